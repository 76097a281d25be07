"""Celery tasks: thin wrappers that take ids and call `pipeline`.

Late acks and prefetch 1 (settings) put a killed worker's message back on the queue; the attempt
counter in the database ends a poison file after COEFVQ_MAX_ATTEMPTS. Only transient errors
(the database or the broker hiccuping) are retried here, with a cap.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.db.models import Q
from django.utils import timezone

from . import dashboard_cache, pipeline, retraining, scoring
from .actions.review_queue import do_release_expired_claims
from .models import Video

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=5,
    acks_late=True,
)
def extract_video(video_id: int) -> None:
    pipeline.extract(video_id)
    # Stage 1 is cheap, so it runs right here: a video is scored as soon as its evidence is in,
    # not after every upload queued behind it has been extracted. The scoring message that
    # `extract` also sends finds the video scored and does nothing.
    scoring.score_baseline(video_id)


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_backoff_max=120, max_retries=5, acks_late=True)
def score_baseline(video_id: int) -> None:
    scoring.score_baseline(video_id)


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_backoff_max=120, max_retries=5, acks_late=True)
def score_mllm(video_id: int) -> None:
    scoring.score_mllm(video_id)


# Steps that pick a video up from each non-terminal state; the reconciler uses this map.
# (An extracted video with no active baseline is re-offered too; scoring sends it back.)
STEP_FOR_STATE = {
    Video.State.RECEIVED: extract_video,
    Video.State.EXTRACTING: extract_video,
    Video.State.EXTRACTED: score_baseline,
    Video.State.SCORING: score_baseline,
    Video.State.AWAITING_MLLM: score_mllm,
}


@shared_task(autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=10)
def reconcile_stuck_videos() -> int:
    """Re-enqueue videos that stopped moving: waiting longer than COEFVQ_STUCK_AFTER_S (a lost
    broker message), or worked on past their lease (a worker that died). Either only delays.

    A re-enqueued video counts as touched (`updated_at`, its expired lease cleared), so it is sent
    again only if it waits another COEFVQ_STUCK_AFTER_S: behind a long backlog its message may
    simply not have come up yet, and re-sending the whole backlog on every run made the queue
    grow faster than the workers emptied it (tests/faults: a broker flushed with 100 videos queued
    and an 8 s stuck period got 3,609 copies while two workers caught up; now about 4 per video).
    """
    now = timezone.now()
    untouched_since = now - timedelta(seconds=settings.COEFVQ_STUCK_AFTER_S)
    waiting_too_long = Q(lease_expires_at__isnull=True, updated_at__lt=untouched_since)
    lease_expired = Q(lease_expires_at__lt=now)
    stuck = Video.objects.filter(Q(state__in=list(STEP_FOR_STATE)) & (waiting_too_long | lease_expired)).exclude(
        pipeline.WAITING_FOR_MODELS
    )
    resend = list(stuck.values_list("pk", "state")[:1000])
    # Conditional: a worker that took a fresh lease meanwhile keeps it.
    Video.objects.filter(pk__in=[pk for pk, _ in resend]).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)).update(lease_expires_at=None, updated_at=now)
    for video_id, state in resend:
        STEP_FOR_STATE[state].delay(video_id)
    if resend:
        log.warning("Re-enqueued %d stuck videos", len(resend))
    return len(resend)


@shared_task(autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=10)
def release_expired_review_claims() -> int:
    """Free review claims whose lease ran out, so live queue pages show them as free again."""
    return do_release_expired_claims()


@shared_task(acks_late=True)
def run_training(run_id: int) -> None:
    """On the gpu queue (settings): it fine-tunes the MLLM. Failures end the run failed, not retried."""
    retraining.run_training(run_id)


@shared_task(autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=10)
def maybe_retrain() -> int:
    """Scheduled (migration 0007): a training run per policy with enough new reviewer labels."""
    return len(retraining.maybe_retrain())


@shared_task(autoretry_for=(DatabaseError,), max_retries=3, retry_backoff=10)
def refresh_dashboards() -> int:
    """Scheduled (settings, every COEFVQ_DASHBOARD_REFRESH_S): the leads' dashboard recomputed
    off the request path for every policy and window, so a page load only counts the live hours."""
    return dashboard_cache.refresh_all()
