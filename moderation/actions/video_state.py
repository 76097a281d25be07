"""The video state machine: compare-and-set transitions, leased attempts, failure with a reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from ..models import Video, VideoEvent


def do_transition(
    video_id: int,
    *,
    expected: Iterable[str],
    to_state: str,
    message: str = "",
    actor=None,
    data: dict | None = None,
    **fields,
) -> bool:
    """Compare-and-set the state: only one of several racing workers wins. Returns whether it did."""
    expected = tuple(expected)
    fields.setdefault("held_reason", "")  # a step that moves the video on has run: nothing holds it
    with transaction.atomic():
        from_state = Video.objects.filter(pk=video_id).values_list("state", flat=True).first()
        changed = Video.objects.filter(pk=video_id, state__in=expected).update(
            state=to_state, state_changed_at=timezone.now(), updated_at=timezone.now(), lease_expires_at=None, **fields
        )
        if changed:
            VideoEvent.objects.create(
                video_id=video_id, from_state=from_state or "", to_state=to_state, actor=actor,
                message=message, data=data or {},
            )
    return bool(changed)


def do_start_attempt(video_id: int, *, expected: Iterable[str], to_state: str) -> int | None:
    """Move into a working state, take a lease on the video and count the attempt.

    Returns the attempt number, or None when the step has nothing to do: the video is in another
    state (done, failed), another worker holds an unexpired lease on it (a duplicate message), or
    it has used up its attempts (then it ends failed).
    """
    now = timezone.now()
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.state not in expected:
            return None
        if video.lease_expires_at is not None and video.lease_expires_at > now:
            return None
        attempt = video.attempts + 1
        if attempt > settings.COEFVQ_MAX_ATTEMPTS:
            # The earlier attempts never finished: the file keeps crashing or stalling workers.
            do_fail(video_id, code="too_many_attempts", expected=[video.state],
                    reason=f"Processing was interrupted {attempt - 1} times on this file (the decoder crashed or "
                    "the worker stopped), so it was given up.")
            return None
        Video.objects.filter(pk=video_id).update(
            state=to_state, attempts=F("attempts") + 1, state_changed_at=now, updated_at=now,
            lease_expires_at=now + timedelta(seconds=settings.COEFVQ_STEP_LEASE_S),
        )
        VideoEvent.objects.create(
            video_id=video_id, from_state=video.state, to_state=to_state, message=f"Attempt {attempt}."
        )
    return attempt


def do_fail(video_id: int, *, reason: str, code: str, expected: Iterable[str] | None = None) -> bool:
    """End a video failed, with a reason a moderator understands. The file is kept."""
    states = tuple(expected) if expected is not None else tuple(
        s for s in Video.State.values if s not in Video.TERMINAL_STATES
    )
    return do_transition(
        video_id, expected=states, to_state=Video.State.FAILED, message=reason,
        data={"code": code}, error_code=code[:40], error_reason=reason or "Processing failed.",
    )


def do_hold(video_id: int, *, state: str, reason: str) -> bool:
    """A step could not run for a reason that is not the file's (a missing or broken model, a
    configuration error): the video stays in `state`, the attempt it took is given back (a broken
    model must not use up a good file's attempts), and admins see `reason` on it. The reconciler
    tries it again, so it moves on once the cause is fixed. Returns whether the video was held."""
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id, state=state).first()
        if video is None:
            return False
        Video.objects.filter(pk=video_id).update(attempts=Greatest(F("attempts") - 1, 0), lease_expires_at=None,
                                                 held_reason=reason, updated_at=timezone.now())
        if video.held_reason != reason:  # once per cause, not once per retry
            VideoEvent.objects.create(video_id=video_id, from_state=state, to_state=state,
                                      message="Waiting: a model or configuration problem, not this file, stopped "
                                              "processing; an admin can see why. It will be tried again.",
                                      data={"held": reason})
    return True
