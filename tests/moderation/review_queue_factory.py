"""Decided videos waiting in the review queue, for the review tests."""

from __future__ import annotations

import hashlib

from django.utils import timezone

from moderation.actions.review_queue import do_open_review
from moderation.models import Policy, ReviewTask, Video


def decided_video(name: str, *, label: str = "ok", p_violation: float = 0.5, violating: str = "scam",
                  reason: str = ReviewTask.Reason.REVIEW_BAND) -> Video:
    """A video the cascade decided with `label`, put in the queue the way the pipeline does."""
    policy = Policy.objects.get(slug="icd")
    video = Video.objects.create(
        policy=policy, file=f"videos/{name}.mp4", original_filename=f"{name}.mp4", sha256=hashlib.sha256(name.encode()).hexdigest(),
        size_bytes=1, source="cli", state=Video.State.DECIDED, state_changed_at=timezone.now(), final_label=label,
        decided_by="baseline", decision="human_review", needs_review=True,
    )
    probabilities = {"ok": 1 - p_violation, "scam": 0.0, "drugs": 0.0, "weapons": 0.0, violating: p_violation}
    do_open_review(video, reason=reason, model_label=label, probabilities=probabilities,
                   p_violation=p_violation)
    return video


def open_task(video: Video) -> ReviewTask:
    return ReviewTask.objects.get(video=video, status=ReviewTask.Status.OPEN)
