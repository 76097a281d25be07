"""The review queue: open a review, claim under a lease, submit a label or skip, free expired claims."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import live, roles
from ..models import Policy, Review, ReviewSkip, ReviewTask, Video, VideoEvent
from .audit import record_audit
from .validation import MAX_CAPTION_CHARS, ActionError, check_text


def review_priority(policy: Policy, probabilities: dict[str, float], p_violation: float, reason: str) -> float:
    """0..1: expected severity of what the video may be, and how unsure the model is about it.

    Audit samples were decided confidently and only check the machine, so they come after the
    review band's items of the same age.
    """
    severity = sum(probabilities.get(label, 0.0) * float(weight) for label, weight in policy.severity.items())
    uncertainty = 1.0 - abs(2.0 * p_violation - 1.0)  # 1 at P(violation) = 0.5, 0 when sure
    priority = 0.6 * min(severity, 1.0) + 0.4 * uncertainty
    return priority * (0.5 if reason == ReviewTask.Reason.AUDIT else 1.0)


def do_open_review(video: Video, *, reason: str, model_label: str, probabilities: dict[str, float],
                   p_violation: float) -> ReviewTask:
    """Put a video in the human queue (at most one open task per video)."""
    existing = ReviewTask.objects.filter(video=video, status=ReviewTask.Status.OPEN).first()
    if existing is not None:
        return existing
    priority = review_priority(video.policy, probabilities, p_violation, reason)
    now = timezone.now()
    headstart = timedelta(hours=settings.COEFVQ_REVIEW_PRIORITY_HEADSTART_H * priority)
    try:
        with transaction.atomic():
            task = ReviewTask.objects.create(video=video, policy_id=video.policy_id, reason=reason, priority=priority,
                                             due_at=now - headstart, model_label=model_label, p_violation=p_violation)
    except IntegrityError:  # a racing caller opened it first
        return ReviewTask.objects.get(video=video, status=ReviewTask.Status.OPEN)
    transaction.on_commit(lambda: live.queue_changed("added", task.pk))
    return task


def _claimable(now):
    return ReviewTask.objects.filter(status=ReviewTask.Status.OPEN).filter(
        Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now)
    )


def _live_claims_of(user, now):
    return ReviewTask.objects.filter(status=ReviewTask.Status.OPEN, claimed_by=user, claim_expires_at__gt=now)


def _claim_held_by(user, now) -> ReviewTask | None:
    return _live_claims_of(user, now).order_by("claimed_at").first()


def _lock_reviewer(user) -> None:
    """Queue this reviewer's claims one behind the other (a row lock on their user until the
    transaction ends), so two tabs cannot both find no held claim and each take an item."""
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def do_claim_next(user, *, policy: Policy | None = None) -> ReviewTask | None:
    """Give the reviewer the most urgent free item, under a lease; None when the queue is empty.

    A reviewer who already holds a live claim gets that item again (its lease renewed), so a
    double click or a second tab never takes two (`_lock_reviewer`). Items the reviewer
    skipped go to others. Row locks with SKIP LOCKED let many reviewers claim at once without
    waiting on each other; the compare-and-set update is what makes a claim exclusive (SQLite has
    no row locks, and serialises writers instead).
    """
    check_can_review(user)
    lease = timedelta(seconds=settings.COEFVQ_REVIEW_LEASE_S)
    for _ in range(5):  # lost races retry with the next candidate
        now = timezone.now()
        with transaction.atomic():
            _lock_reviewer(user)
            held = _claim_held_by(user, now)
            if held is not None:
                # The held claim may have been decided or skipped in another tab since the look.
                renewed = _live_claims_of(user, now).filter(pk=held.pk, claim_token=held.claim_token).update(
                    claim_expires_at=now + lease)
                if renewed:
                    held.claim_expires_at = now + lease
                    return held
                continue
            candidates = _claimable(now).exclude(skips__reviewer=user)
            if policy is not None:
                candidates = candidates.filter(policy=policy)
            task = candidates.select_for_update(skip_locked=True).order_by("due_at", "id").first()
            if task is None:
                return None
            token = uuid.uuid4()
            won = _claimable(now).filter(pk=task.pk, claim_token=task.claim_token).update(
                claimed_by=user, claimed_at=now, claim_expires_at=now + lease, claim_token=token)
            if won:
                VideoEvent.objects.create(video_id=task.video_id, from_state=Video.State.DECIDED,
                                          to_state=Video.State.DECIDED, actor=user,
                                          message=f"Review claimed by {user.get_username()}.",
                                          data={"review_task": task.pk})
                transaction.on_commit(lambda: live.queue_changed("claimed", task.pk))
                return ReviewTask.objects.select_related("video").get(pk=task.pk)
    return None


def check_can_review(user) -> None:
    if not roles.has_role(user, *roles.ROLES):
        raise ActionError("Only reviewers, leads and admins can review.", code="not_a_reviewer", status=403)


def check_claim(task_id: int, user, claim_token) -> ReviewTask:
    """The task, locked, if `user` still holds this claim on it; ActionError (409) otherwise."""
    check_can_review(user)
    # Only the task's row: locking the joined policy row too would make every decision of a
    # policy wait for the one before it.
    task = (ReviewTask.objects.select_for_update(of=("self",)).select_related("video", "policy")
            .filter(pk=task_id).first())
    if task is None:
        raise ActionError("There is no such review task.", code="unknown_task", status=404)
    if task.status != ReviewTask.Status.OPEN:
        raise ActionError("This video was already reviewed.", code="already_reviewed", status=409)
    if (task.claimed_by_id != user.pk or str(task.claim_token) != str(claim_token)
            or task.claim_expires_at is None or task.claim_expires_at <= timezone.now()):
        raise ActionError("Your claim on this video ran out and it went back to the queue; nothing was saved. "
                          "Claim it again to review it.", code="claim_lost", status=409)
    return task


def check_review_label(task: ReviewTask, label: str) -> str:
    if label not in task.policy.labels:
        raise ActionError(f"{label!r} is not a label of this policy; use one of {', '.join(task.policy.labels)}.",
                          code="unknown_label")
    return label


def do_submit_review(task_id: int, user, *, claim_token, label: str, note: str = "") -> Review:
    """Record the reviewer's label. It becomes the video's final label and a training example."""
    note = check_text(note, field="note", limit=MAX_CAPTION_CHARS)
    with transaction.atomic():
        task = check_claim(task_id, user, claim_token)
        label = check_review_label(task, label)
        video = task.video
        now = timezone.now()
        review = Review.objects.create(
            task=task, video=video, reviewer=user, label=label, note=note, caption=video.caption, title=video.title,
            model_label=task.model_label,
            model_decided_by=video.decided_by if video.decided_by != "human" else "",
            disagrees_with_model=label != task.model_label,
            seconds_spent=(now - task.claimed_at).total_seconds(),
        )
        ReviewTask.objects.filter(pk=task.pk).update(status=ReviewTask.Status.DONE, completed_at=now,
                                                     claim_expires_at=None)
        Video.objects.filter(pk=video.pk).update(final_label=label, decided_by="human", needs_review=False,
                                                 updated_at=now)
        verdict = "agrees with" if not review.disagrees_with_model else "overrules"
        VideoEvent.objects.create(
            video=video, from_state=video.state, to_state=video.state, actor=user,
            message=f"Reviewed by {user.get_username()}: {label} ({verdict} the model's {task.model_label}).",
            data={"review": review.pk, "label": label, "model_label": task.model_label},
        )
        record_audit(user, "review.decided", review, f"Video #{video.pk} labeled {label} ({verdict} the model's "
                     f"{task.model_label}).", video=video.pk, task=task.pk, label=label, model_label=task.model_label)
        transaction.on_commit(lambda: live.queue_changed("done", task.pk))
    return review


def check_can_correct(user) -> None:
    if not roles.has_role(user, roles.LEAD, roles.ADMIN):
        raise ActionError("Only leads and admins can reopen a video or correct a review.", code="not_a_lead",
                          status=403)


def _check_reason(reason: str) -> str:
    reason = check_text(reason, field="reason", limit=MAX_CAPTION_CHARS)
    if not reason:
        raise ActionError("Say why: the reason is kept in the audit log with your name.", code="reason_required")
    return reason


def do_reopen(video_id: int, user, *, reason: str) -> ReviewTask:
    """A lead asks for a second review of a decided video: it goes back to the queue, and the
    reviewers who already judged it are not given it again (an independent second opinion, which
    the dashboard's agreement between reviewers is made of). The later label becomes the video's."""
    check_can_correct(user)
    reason = _check_reason(reason)
    with transaction.atomic():
        video = Video.objects.select_for_update().select_related("policy").filter(pk=video_id).first()
        if video is None:
            raise ActionError("There is no such video.", code="unknown_video", status=404)
        if video.state != Video.State.DECIDED:
            raise ActionError("Only a decided video can be reopened.", code="not_decided", status=409)
        if ReviewTask.objects.filter(video=video, status=ReviewTask.Status.OPEN).exists():
            raise ActionError("This video is already waiting in the review queue.", code="already_queued", status=409)
        last = ReviewTask.objects.filter(video=video).order_by("-created_at", "-id").first()
        task = do_open_review(video, reason=ReviewTask.Reason.SECOND_REVIEW,
                              model_label=last.model_label if last else video.final_label, probabilities={},
                              p_violation=last.p_violation if last else 0.5)
        earlier = set(Review.objects.filter(video=video).values_list("reviewer_id", flat=True))
        ReviewSkip.objects.bulk_create(ReviewSkip(task=task, reviewer_id=reviewer_id, reason="Reviewed it before: a "
                                                  "second opinion is wanted.") for reviewer_id in earlier)
        Video.objects.filter(pk=video.pk).update(needs_review=True, updated_at=timezone.now())
        VideoEvent.objects.create(video=video, from_state=video.state, to_state=video.state, actor=user,
                                  message=f"Reopened for a second review by {user.get_username()}: {reason}",
                                  data={"review_task": task.pk})
        record_audit(user, "review.reopened", task, f"Video #{video.pk} reopened for a second review: {reason}",
                     video=video.pk, reason=reason)
    return task


def do_correct_review(review_id: int, user, *, label: str, reason: str) -> Review:
    """A lead overturns a review: a new review with the lead's label (a correction: retraining
    takes each video's latest label) and the reason, audited. The review it corrects stays."""
    check_can_correct(user)
    reason = _check_reason(reason)
    with transaction.atomic():
        corrected = Review.objects.select_related("task", "video__policy").filter(pk=review_id).first()
        if corrected is None:
            raise ActionError("There is no such review.", code="unknown_review", status=404)
        video = Video.objects.select_for_update().get(pk=corrected.video_id)
        latest = Review.objects.filter(video=video).order_by("-created_at", "-id").first()
        if latest.pk != corrected.pk:
            raise ActionError(f"Video #{video.pk} has a newer review (#{latest.pk}, {latest.label}); correct that one.",
                              code="not_the_latest_review", status=409)
        if ReviewTask.objects.filter(video=video, status=ReviewTask.Status.OPEN).exists():
            raise ActionError("This video is waiting in the review queue; let that review finish first.",
                              code="already_queued", status=409)
        if label not in video.policy.labels:
            raise ActionError(f"{label!r} is not a label of this policy; use one of {', '.join(video.policy.labels)}.",
                              code="unknown_label")
        if label == corrected.label:
            raise ActionError(f"The review already says {label}.", code="nothing_to_correct")
        now = timezone.now()
        task = ReviewTask.objects.create(
            video=video, policy_id=video.policy_id, reason=ReviewTask.Reason.CORRECTION, status=ReviewTask.Status.DONE,
            priority=0.0, due_at=now, model_label=corrected.model_label, p_violation=corrected.task.p_violation,
            claimed_by=user, claimed_at=now, completed_at=now)
        review = Review.objects.create(
            # A correction judges what the corrected review judged: its caption and title.
            task=task, video=video, reviewer=user, label=label, note=reason, caption=corrected.caption,
            title=corrected.title, model_label=corrected.model_label,
            model_decided_by=corrected.model_decided_by, disagrees_with_model=label != corrected.model_label,
            seconds_spent=0.0)
        Video.objects.filter(pk=video.pk).update(final_label=label, decided_by="human", needs_review=False,
                                                 updated_at=now)
        VideoEvent.objects.create(
            video=video, from_state=video.state, to_state=video.state, actor=user,
            message=f"Corrected by {user.get_username()}: {corrected.label} → {label}. {reason}",
            data={"review": review.pk, "corrects": corrected.pk, "label": label})
        record_audit(user, "review.corrected", review, f"Video #{video.pk}: review #{corrected.pk} ({corrected.label} by "
                     f"{corrected.reviewer.get_username()}) corrected to {label}: {reason}", video=video.pk,
                     corrects=corrected.pk, old_label=corrected.label, label=label, reason=reason)
    return review


def do_skip_review(task_id: int, user, *, claim_token, reason: str) -> ReviewSkip:
    """Hand the item back for someone else, saying why; this reviewer is not given it again."""
    reason = check_text(reason, field="reason", limit=500)
    if not reason:
        raise ActionError("Say why you skip this video.", code="skip_reason_required")
    with transaction.atomic():
        task = check_claim(task_id, user, claim_token)
        skip = ReviewSkip.objects.create(task=task, reviewer=user, reason=reason)
        ReviewTask.objects.filter(pk=task.pk).update(claimed_by=None, claimed_at=None, claim_expires_at=None,
                                                     claim_token=None)
        VideoEvent.objects.create(video_id=task.video_id, from_state=task.video.state, to_state=task.video.state,
                                  actor=user, message=f"Skipped by {user.get_username()}: {reason}",
                                  data={"review_task": task.pk})
        record_audit(user, "review.skipped", task, f"Skipped video #{task.video_id}: {reason}", video=task.video_id)
        transaction.on_commit(lambda: live.queue_changed("released", task.pk))
    return skip


def do_release_expired_claims() -> int:
    """Clear claims whose lease ran out, so queue pages show them free. Claiming treats an expired
    claim as free anyway; this only tidies up and tells the live pages."""
    now = timezone.now()
    expired = list(ReviewTask.objects.filter(status=ReviewTask.Status.OPEN, claim_expires_at__lte=now)
                   .values_list("pk", flat=True)[:1000])
    released = ReviewTask.objects.filter(pk__in=expired, claim_expires_at__lte=now).update(
        claimed_by=None, claimed_at=None, claim_expires_at=None, claim_token=None)
    for task_id in expired:
        transaction.on_commit(lambda task_id=task_id: live.queue_changed("released", task_id))
    return released
