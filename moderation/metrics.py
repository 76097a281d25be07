"""What /metrics says about the moderation work, read from the database at scrape time.

The database is the truth about every video, task and review, and it is shared by every web
process and worker, so counting there gives the same answer whichever web process Prometheus
reaches, with nothing to push from the workers. django-prometheus adds the request, cache and
process metrics beside these. Each query reads an index (`state`, `status`, a recent `at` or
`created_at`), so a scrape costs the same at 100,000 videos as at 100.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import health
from .models import CascadeConfig, Review, ReviewTask, RoutingDecision, Video, VideoEvent

WAITING_STATES = [state for state in Video.State.values if state not in Video.TERMINAL_STATES]
# Step latencies are read from the most recent events that recorded them, at most this many.
STEP_SAMPLE = 5_000
QUANTILES = (0.5, 0.95)


def nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


class ModerationCollector:
    """A prometheus_client collector; `collect` runs on every scrape."""

    def describe(self):
        return []  # nothing to collect when registered: the queries run only on a scrape

    def collect(self):
        database_up = GaugeMetricFamily("coefvq_database_up", "1 when the database answered this scrape's queries.")
        try:
            families = [*self.video_queue(), *self.review_queue(), *self.mllm_calls(), *self.step_durations(),
                        *self.failures(), *self.reviews()]
        except DatabaseError:
            families = []
        database_up.add_metric([], 1 if families else 0)
        yield database_up
        yield from families
        yield from self.worker_heartbeats()

    def video_queue(self):
        now = timezone.now()
        rows = {row["state"]: row for row in Video.objects.filter(state__in=WAITING_STATES).values("state")
                .annotate(n=Count("id"), oldest=Min("state_changed_at"))}
        depth = GaugeMetricFamily("coefvq_videos_waiting", "Videos in each processing state (not yet decided or failed).",
                                  labels=["state"])
        age = GaugeMetricFamily("coefvq_videos_waiting_oldest_age_seconds",
                                "How long the longest-waiting video has been in this state (0 when none is).",
                                labels=["state"])
        for state in WAITING_STATES:
            row = rows.get(state)
            depth.add_metric([state], row["n"] if row else 0)
            age.add_metric([state], (now - row["oldest"]).total_seconds() if row else 0.0)
        return [depth, age]

    def review_queue(self):
        now = timezone.now()
        rows = {row["reason"]: row for row in ReviewTask.objects.filter(status=ReviewTask.Status.OPEN)
                .values("reason").annotate(n=Count("id"), oldest=Min("created_at"))}
        depth = GaugeMetricFamily("coefvq_review_tasks_open", "Review tasks waiting for a reviewer.", labels=["reason"])
        age = GaugeMetricFamily("coefvq_review_tasks_open_oldest_age_seconds",
                                "Age of the oldest open review task (0 when none is open).", labels=["reason"])
        for reason in ReviewTask.Reason.values:
            row = rows.get(reason)
            depth.add_metric([reason], row["n"] if row else 0)
            age.add_metric([reason], (now - row["oldest"]).total_seconds() if row else 0.0)
        return [depth, age]

    def mllm_calls(self):
        """The share of recent stage 1 decisions sent to the MLLM, next to the budget in force."""
        since = timezone.now() - timedelta(seconds=settings.COEFVQ_METRICS_WINDOW_S)
        routed = GaugeMetricFamily(
            "coefvq_mllm_routed_ratio",
            f"Share of the stage 1 decisions of the last {settings.COEFVQ_METRICS_WINDOW_S} s sent to the MLLM.",
            labels=["policy"])
        scored = GaugeMetricFamily(
            "coefvq_stage1_decisions_recent",
            f"Stage 1 routing decisions in the last {settings.COEFVQ_METRICS_WINDOW_S} s.", labels=["policy"])
        for row in (RoutingDecision.objects.filter(created_at__gte=since).values("cascade_config__policy__slug")
                    .annotate(scored=Count("id"), routed=Count("id", filter=Q(routed_to_mllm=True)))
                    .order_by("cascade_config__policy__slug")):
            policy = row["cascade_config__policy__slug"]
            scored.add_metric([policy], row["scored"])
            routed.add_metric([policy], row["routed"] / row["scored"])
        budget = GaugeMetricFamily("coefvq_mllm_budget_ratio",
                                   "The MLLM budget of the active cascade configuration (absent: a fixed threshold).",
                                   labels=["policy"])
        for slug, share in (CascadeConfig.objects.filter(is_active=True, mllm_budget__isnull=False)
                            .values_list("policy__slug", "mllm_budget").order_by("policy__slug")):
            budget.add_metric([slug], share)
        decides = GaugeMetricFamily("coefvq_stage2_decides",
                                    "1 when stage 2's verdict decides routed videos; 0 while it is on trial and "
                                    "reviewers decide them.", labels=["policy"])
        for slug, value in (CascadeConfig.objects.filter(is_active=True, mllm_version__isnull=False)
                            .values_list("policy__slug", "stage2_decides").order_by("policy__slug")):
            decides.add_metric([slug], int(value))
        return [routed, scored, budget, decides]

    def step_durations(self):
        """Each processing step's seconds, as the video events record them (decode, asr, ocr, store,
        evidence, baseline, mllm), over the recent window."""
        since = timezone.now() - timedelta(seconds=settings.COEFVQ_METRICS_WINDOW_S)
        recorded = (VideoEvent.objects.filter(at__gte=since, data__has_key="seconds").order_by("-at")
                    .values_list("data__seconds", flat=True)[:STEP_SAMPLE])
        by_step: dict[str, list[float]] = {}
        for seconds in recorded:
            for name, value in (seconds or {}).items():
                if isinstance(value, (int, float)):
                    by_step.setdefault(name.removesuffix("_s"), []).append(float(value))
        duration = GaugeMetricFamily(
            "coefvq_step_duration_seconds",
            f"Quantiles of each processing step's wall time over the last {settings.COEFVQ_METRICS_WINDOW_S} s.",
            labels=["step", "quantile"])
        runs = GaugeMetricFamily("coefvq_step_runs_recent",
                                 f"Processing steps finished in the last {settings.COEFVQ_METRICS_WINDOW_S} s.",
                                 labels=["step"])
        for step, values in sorted(by_step.items()):
            values.sort()
            runs.add_metric([step], len(values))
            for q in QUANTILES:
                duration.add_metric([step, str(q)], nearest_rank(values, q))
        return [duration, runs]

    def failures(self):
        failed = CounterMetricFamily("coefvq_video_failures", "Videos that ended failed, by reason code.",
                                     labels=["code"])
        for code, n in (Video.objects.filter(state=Video.State.FAILED).values_list("error_code")
                        .annotate(n=Count("id")).order_by("error_code")):
            failed.add_metric([code or "unknown"], n)
        return [failed]

    def reviews(self):
        """Reviews are append-only, so their count is a true counter: rate() gives reviews per hour."""
        total = CounterMetricFamily("coefvq_reviews", "Reviewer decisions stored.")
        total.add_metric([], Review.objects.count())
        return [total]

    def worker_heartbeats(self):
        age = GaugeMetricFamily("coefvq_worker_heartbeat_age_seconds",
                                "Seconds since a worker of this queue last sent its heartbeat.", labels=["queue"])
        try:
            beats = health.last_heartbeats(settings.COEFVQ_HEALTH_QUEUES)
        except Exception:  # noqa: BLE001 - the cache is down: say nothing rather than fail the scrape
            return
        now = time.time()
        for queue, beat in beats.items():
            if beat is not None:
                age.add_metric([queue], now - beat["at"])
        yield age
