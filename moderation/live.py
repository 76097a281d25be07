"""Live updates for the browser: queue changes go to a Channels group that the queue page's
WebSocket listens on. Publishing is best effort: a page that misses a message still shows the
truth on its next load, so a channel-layer outage never fails a review."""

from __future__ import annotations

import logging
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db.models import Max
from django.utils import timezone

from .models import ReviewTask

log = logging.getLogger(__name__)

QUEUE_GROUP = "review-queue"
QUEUE_EVENTS = ("added", "claimed", "released", "done")
TRAINING_GROUP = "training-runs"


def _publish(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 - see the module docstring
        log.warning("Could not publish %s to %s", message, group, exc_info=True)


def queue_changed(event: str, task_id: int) -> None:
    """Tell open queue pages that a task was added, claimed, released or done."""
    assert event in QUEUE_EVENTS, event
    _publish(QUEUE_GROUP, {"type": "queue.changed", "event": event, "task": task_id})


def training_progress(run_id: int, *, status: str, progress: float, step: str) -> None:
    """Tell open pages how a training run is getting on (its row says the same, for a reload)."""
    _publish(TRAINING_GROUP, {"type": "training.progress", "run": run_id, "status": status,
                              "progress": progress, "step": step})


def layer_spans_processes(layer) -> bool:
    """Whether a message published by a Celery worker reaches the web process through `layer`.
    The embedded default's in-memory layer lives inside one process, so it does not."""
    return not isinstance(layer, InMemoryChannelLayer)


class QueueWatch:
    """The queue changes that other processes made, read from the database, for a web process
    whose channel layer cannot hear them (the embedded default: workers open review tasks in
    processes of their own).

    It looks only for what the web process cannot publish itself: tasks opened since the last
    look, and claims whose lease ran out since then. The embedded default's SQLite serialises
    writes, so task ids commit in order and a cursor on the id misses none.
    """

    def __init__(self) -> None:
        self._tasks = ReviewTask.objects
        self._open = ReviewTask.Status.OPEN
        self.last_task_id: int = self._tasks.aggregate(last=Max("pk"))["last"] or 0
        self.checked_at: datetime = timezone.now()

    def changes(self) -> list[tuple[str, int]]:
        """(event, task id) for each change since the last call."""
        now = timezone.now()
        opened = list(self._tasks.filter(pk__gt=self.last_task_id, status=self._open)
                      .order_by("pk").values_list("pk", flat=True))
        lapsed = list(self._tasks.filter(status=self._open, claim_expires_at__gt=self.checked_at,
                                         claim_expires_at__lte=now)
                      .order_by("claim_expires_at").values_list("pk", flat=True))
        self.last_task_id = max([self.last_task_id, *opened])
        self.checked_at = now
        return [("added", pk) for pk in opened] + [("released", pk) for pk in lapsed]
