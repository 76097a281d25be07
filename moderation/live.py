"""Live updates for the browser: queue changes go to a Channels group that the queue page's
WebSocket listens on. Publishing is best effort: a page that misses a message still shows the
truth on its next load, so a channel-layer outage never fails a review."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

QUEUE_GROUP = "review-queue"
QUEUE_EVENTS = ("added", "claimed", "released", "done")


def queue_changed(event: str, task_id: int) -> None:
    """Tell open queue pages that a task was added, claimed, released or done."""
    assert event in QUEUE_EVENTS, event
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(QUEUE_GROUP, {"type": "queue.changed", "event": event, "task": task_id})
    except Exception:  # noqa: BLE001 - see the module docstring
        log.warning("Could not publish queue change %s for task %s", event, task_id, exc_info=True)
