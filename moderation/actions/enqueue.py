"""Enqueue a Celery task by its registered name.

The task modules import the operations, so the operations must not import the tasks: sending by
name keeps the module graph one-way. The queue comes from CELERY_TASK_ROUTES, which routes by name.
"""

from __future__ import annotations

import logging

from celery import current_app

log = logging.getLogger(__name__)

TASK_PREFIX = "moderation.tasks."


def send_task(task_name: str, object_id: int, *, retried_by: str) -> None:
    """Nudge a worker to run `moderation.tasks.<task_name>(object_id)`.

    The database row is the work; the message only nudges. With the broker down the failure is
    logged, not raised: `retried_by` finds the row where it rests and sends it again.
    """
    try:
        current_app.send_task(TASK_PREFIX + task_name, args=[object_id])
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("Could not enqueue %s(%s); %s will send it again", task_name, object_id, retried_by)
