"""The numbers on the leads' dashboard, for one policy and one time window.

Plain functions that return dataclasses. Counting happens in the database (truncated
timestamps, Count, a median aggregate) so a query costs the same at 100k videos as at 100;
the few places that need rows in Python (model quality on reviewer labels, the entropy
histogram) read a capped, most-recent sample through an index. Metrics come from
`inference.metrics` and the cascade replay from `inference.evaluate`, as in the offline reports.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, FloatField, OuterRef, Q, Subquery
from django.db.models.functions import TruncDay, TruncHour, TruncWeek
from django.utils import timezone

from inference.evaluate import cascade_curves
from inference.metrics import RECALL_AT_PRECISION_TARGETS, binary_report

from .models import CascadeConfig, Policy, Prediction, Review, ReviewTask, RoutingDecision, TrainingRun, Video

TRUNC = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
WINDOW_DAYS = (1, 7, 30, 90)

# Caps on the rows read into Python: the most recent ones in the window.
LABELED_SAMPLE = 20_000  # reviewed videos for F1 / R@P and the budget trade-off
ENTROPY_SAMPLE = 5_000  # baseline predictions in the entropy histogram
TOP_REVIEWERS = 50
ENTROPY_BINS = 24
# Denser where budgets are set in practice; each point is a cascade replay plus its metrics.
TRADEOFF_BUDGETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
TRADEOFF_RANDOM_REPEATS = 3  # the random router is averaged over this many seeds
Z_95 = 1.959963984540054  # standard normal quantile for a two-sided 95% interval


# --- the window ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None) -> Window:
        end = now or timezone.now()
        return cls(end - timedelta(days=days), end)

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)

    @property
    def bucket(self) -> str:
        """Hours for a day or two, days beyond: a few dozen points on a chart either way."""
        return "hour" if self.days <= 2 else "day"

    @property
    def quality_bucket(self) -> str:
        """F1 needs dozens of labels a point, so model quality is bucketed coarser than volume."""
        return "week" if self.days >= 28 else "day"

    def starts(self, unit: str) -> list[datetime]:
        """Every bucket start in the window, so empty hours or days show as zero."""
        first = floor_to(self.start, unit)
        count = math.ceil((self.end - first) / STEP[unit])
        return [first + i * STEP[unit] for i in range(count)]

    def filter(self, field_name: str) -> Q:
        return Q(**{f"{field_name}__gte": self.start, f"{field_name}__lt": self.end})


def floor_to(moment: datetime, unit: str) -> datetime:
    """The start of the bucket holding `moment`, in the current time zone, as the database truncates."""
    local = timezone.localtime(moment).replace(minute=0, second=0, microsecond=0)
    if unit in ("day", "week"):
        local = local.replace(hour=0)
    if unit == "week":
        local -= timedelta(days=local.weekday())  # weeks start on Monday, as date_trunc('week')
    return local


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


class Median(Aggregate):
    """The median of a float column, computed in the database.

    PostgreSQL has it as an ordered-set aggregate. SQLite (the embedded default) has none, so a
    small Python aggregate is registered on the connection before the query uses it.
    """

    name = "Median"
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        connection.ensure_connection()
        connection.connection.create_aggregate("coefvq_median", 1, _SqliteMedian)
        return super().as_sql(compiler, connection, function="coefvq_median", template="%(function)s(%(expressions)s)",
                              **extra_context)


class _SqliteMedian:
    def __init__(self):
        self.values: list[float] = []

    def step(self, value):
        if value is not None:
            self.values.append(value)

    def finalize(self):
        return statistics.median(self.values) if self.values else None


def _nearest_rank(queryset, order_by, fraction: float, count: int):
    """The value at the `fraction` quantile (nearest-rank method) of a queryset of `count` rows,
    fetched with ORDER BY ... OFFSET so only one row leaves the database."""
    if count == 0:
        return None
    rank = max(math.ceil(fraction * count), 1)
    # The rows may have changed since they were counted (a review landed): then there is no answer.
    return queryset.order_by(order_by).values_list("value", flat=True)[rank - 1:rank].first()


# --- volume and MLLM call rate ------------------------------------------------------------------


@dataclass
class VolumeBucket:
    start: datetime
    uploaded: int
    auto_allow: int
    auto_action: int
    human_review: int
    undecided: int  # still processing, or failed
    scored: int  # stage 1 routing decisions made in this bucket
    routed: int  # of those, sent to the MLLM (forced routes included)
    call_rate: float | None
    budget: float | None  # the budget of the configuration that routed most of this bucket
    config_versions: str  # every configuration version that routed here, e.g. "3 4"


def volume_rows(policy: Policy, unit: str, window: Window) -> list[dict]:
    """Counts per bucket (the `bucket` key) of the videos uploaded in the window, by decision
    (`kind` "uploads"), and of its routing decisions, by configuration (`kind` "routing")."""
    uploads = (Video.objects.filter(window.filter("created_at"), policy=policy)
               .annotate(bucket=TRUNC[unit]("created_at")).values("bucket")
               .annotate(uploaded=Count("id"),
                         **{decision: Count("id", filter=Q(decision=decision)) for decision in Video.Decision.values}))
    # By the configuration's policy: joining the small configuration table, not every video.
    routing = (RoutingDecision.objects.filter(window.filter("created_at"), cascade_config__policy=policy)
               .annotate(bucket=TRUNC[unit]("created_at"))
               .values("bucket", "cascade_config__version", "cascade_config__mllm_budget")
               .annotate(scored=Count("id"), routed=Count("id", filter=Q(routed_to_mllm=True))))
    return [{"kind": "uploads", **row} for row in uploads] + [{"kind": "routing", **row} for row in routing]


def volume_from_rows(window: Window, unit: str, rows: list[dict]) -> list[VolumeBucket]:
    uploads = {row["bucket"]: row for row in rows if row["kind"] == "uploads"}
    routing = defaultdict(list)
    for row in rows:
        if row["kind"] == "routing":
            routing[row["bucket"]].append(row)
    return [_volume_bucket(start, uploads.get(start, {}), routing.get(start, [])) for start in window.starts(unit)]


def volume(policy: Policy, window: Window) -> list[VolumeBucket]:
    return volume_from_rows(window, window.bucket, volume_rows(policy, window.bucket, window))


def _volume_bucket(start: datetime, uploads: dict, configs: list[dict]) -> VolumeBucket:
    scored = sum(row["scored"] for row in configs)
    routed = sum(row["routed"] for row in configs)
    main_config = max(configs, key=lambda row: row["scored"], default=None)
    decided = {decision: uploads.get(decision, 0) for decision in Video.Decision.values}
    uploaded = uploads.get("uploaded", 0)
    return VolumeBucket(
        start=start, uploaded=uploaded, **decided, undecided=uploaded - sum(decided.values()),
        scored=scored, routed=routed, call_rate=_ratio(routed, scored),
        budget=main_config["cascade_config__mllm_budget"] if main_config else None,
        config_versions=" ".join(str(v) for v in sorted({row["cascade_config__version"] for row in configs})),
    )


# --- review queue -------------------------------------------------------------------------------


@dataclass
class QueueNow:
    open: int
    claimed: int
    open_review_band: int
    open_audit: int
    oldest_age_s: float | None
    p50_age_s: float | None
    p95_age_s: float | None
    completed: int  # in the window
    p50_time_to_review_s: float | None  # from the task's creation to the review, in the window
    p95_time_to_review_s: float | None


@dataclass
class QueueBucket:
    start: datetime
    created: int
    completed: int
    depth_at_end: int  # open tasks when the bucket ended


def queue_now(policy: Policy, window: Window, now: datetime | None = None) -> QueueNow:
    now = now or timezone.now()
    tasks = ReviewTask.objects.filter(policy=policy)
    counts = tasks.aggregate(
        open=Count("id", filter=Q(status=ReviewTask.Status.OPEN)),
        claimed=Count("id", filter=Q(status=ReviewTask.Status.OPEN, claim_expires_at__gt=now)),
        open_review_band=Count("id", filter=Q(status=ReviewTask.Status.OPEN, reason=ReviewTask.Reason.REVIEW_BAND)),
        open_audit=Count("id", filter=Q(status=ReviewTask.Status.OPEN, reason=ReviewTask.Reason.AUDIT)),
        completed=Count("id", filter=Q(window.filter("completed_at"))),
    )
    # The oldest task has waited longest: the q-th quantile of ages is the newest-first rank q*n.
    waiting = tasks.filter(status=ReviewTask.Status.OPEN).annotate(value=F("created_at"))
    age = {q: _nearest_rank(waiting, "-created_at", q, counts["open"]) for q in (0.5, 0.95, 1.0)}
    done = tasks.filter(window.filter("completed_at")).annotate(
        value=ExpressionWrapper(F("completed_at") - F("created_at"), output_field=DurationField()))
    took = {q: _nearest_rank(done, "value", q, counts["completed"]) for q in (0.5, 0.95)}
    return QueueNow(
        **counts,
        oldest_age_s=_seconds_since(age[1.0], now), p50_age_s=_seconds_since(age[0.5], now),
        p95_age_s=_seconds_since(age[0.95], now),
        p50_time_to_review_s=took[0.5].total_seconds() if took[0.5] is not None else None,
        p95_time_to_review_s=took[0.95].total_seconds() if took[0.95] is not None else None,
    )


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return (now - moment).total_seconds() if moment is not None else None


def queue_over_time(policy: Policy, window: Window) -> list[QueueBucket]:
    """Tasks opened and closed per bucket, and the queue depth at each bucket's end, walked back
    from the depth now (a task is open from its creation until its completion)."""
    unit = window.bucket
    tasks = ReviewTask.objects.filter(policy=policy)
    created = _counts_by_bucket(tasks.filter(window.filter("created_at")), "created_at", unit)
    completed = _counts_by_bucket(tasks.filter(window.filter("completed_at")), "completed_at", unit)
    since_end = tasks.aggregate(
        open=Count("id", filter=Q(status=ReviewTask.Status.OPEN)),
        created=Count("id", filter=Q(created_at__gte=window.end)),
        completed=Count("id", filter=Q(completed_at__gte=window.end)),
    )
    depth = since_end["open"] - since_end["created"] + since_end["completed"]
    buckets = []
    for start in reversed(window.starts(unit)):
        buckets.append(QueueBucket(start, created.get(start, 0), completed.get(start, 0), depth))
        depth += completed.get(start, 0) - created.get(start, 0)
    return buckets[::-1]


def _counts_by_bucket(queryset, field_name: str, unit: str) -> dict[datetime, int]:
    rows = queryset.annotate(bucket=TRUNC[unit](field_name)).values("bucket").annotate(n=Count("id"))
    return {row["bucket"]: row["n"] for row in rows}


# --- reviewers ----------------------------------------------------------------------------------


@dataclass
class ReviewerThroughput:
    reviewer: str
    reviews: int
    active_days: int
    reviews_per_active_day: float
    median_seconds: float | None
    agreement: float | None  # share of this reviewer's labels equal to the model's


@dataclass
class ReviewerDay:
    day: datetime
    reviewer: str
    reviews: int


@dataclass
class Agreement:
    stage: str  # the stage whose label the reviewer saw: baseline or mllm
    reviews: int
    agreeing: int
    share: float | None


def reviews_in(policy: Policy, window: Window):
    # Through the task, not the video: the join then reads the review tasks, not every upload
    # (bench/dashboard.py, 100,000 videos: reviewer throughput 120 ms through the videos, 31 through the tasks).
    return Review.objects.filter(window.filter("created_at"), task__policy=policy)


def reviewer_throughput(policy: Policy, window: Window, reviewer=None) -> list[ReviewerThroughput]:
    reviews = reviews_in(policy, window)
    if reviewer is not None:
        reviews = reviews.filter(reviewer=reviewer)
    rows = (reviews.values("reviewer__username")
            .annotate(reviews=Count("id"), active_days=Count(TruncDay("created_at"), distinct=True),
                      median_seconds=Median("seconds_spent"),
                      agreeing=Count("id", filter=Q(disagrees_with_model=False)))
            .order_by("-reviews", "reviewer__username")[:TOP_REVIEWERS])
    return [ReviewerThroughput(reviewer=row["reviewer__username"], reviews=row["reviews"],
                               active_days=row["active_days"],
                               reviews_per_active_day=row["reviews"] / row["active_days"],
                               median_seconds=row["median_seconds"], agreement=_ratio(row["agreeing"], row["reviews"]))
            for row in rows]


def reviewer_days(policy: Policy, window: Window) -> list[ReviewerDay]:
    rows = (reviews_in(policy, window).annotate(day=TruncDay("created_at")).values("day", "reviewer__username")
            .annotate(reviews=Count("id")).order_by("day", "reviewer__username")[:TOP_REVIEWERS * 100])
    return [ReviewerDay(row["day"], row["reviewer__username"], row["reviews"]) for row in rows]


def _grouped(reviews, by_day: bool, *fields: str):
    """Reviews grouped by `fields`, and with by_day by the day they landed too (a `day` key): the
    daily aggregates count many days in one query."""
    return reviews.annotate(day=TruncDay("created_at")).values("day", *fields) if by_day else reviews.values(*fields)


def agreement_rows(policy: Policy, window: Window, by_day: bool = False) -> list[dict]:
    return list(_grouped(reviews_in(policy, window), by_day, "model_decided_by")
                .annotate(reviews=Count("id"), agreeing=Count("id", filter=Q(disagrees_with_model=False))))


def agreement_from_rows(rows: list[dict]) -> list[Agreement]:
    rows = {row["model_decided_by"]: row for row in rows}
    stages = list(Prediction.Stage.values) + sorted(set(rows) - set(Prediction.Stage.values))
    return [Agreement(stage=stage or "human", reviews=rows[stage]["reviews"], agreeing=rows[stage]["agreeing"],
                      share=_ratio(rows[stage]["agreeing"], rows[stage]["reviews"]))
            for stage in stages if stage in rows]


@dataclass
class ReviewerAgreement:
    """Second reviews a lead asked for, each against the review before it by someone else."""

    pairs: int
    same_label: int
    same_verdict: int  # both violating, or both not, by the policy's labels
    label_share: float | None
    verdict_share: float | None
    corrections: int  # reviews a lead corrected in the window


def reviewer_agreement(policy: Policy, window: Window) -> ReviewerAgreement:
    earlier = Review.objects.filter(video=OuterRef("video"), id__lt=OuterRef("id")).order_by("-id")
    rows = list(reviews_in(policy, window)
                .filter(task__reason__in=[ReviewTask.Reason.SECOND_REVIEW, ReviewTask.Reason.CORRECTION])
                .annotate(earlier_label=Subquery(earlier.values("label")[:1]))
                .values_list("task__reason", "label", "earlier_label"))  # one query: the page counts them
    pairs = [(label, before) for reason, label, before in rows
             if reason == ReviewTask.Reason.SECOND_REVIEW and before is not None]
    violating = set(policy.violating_labels)
    same_label = sum(label == before for label, before in pairs)
    same_verdict = sum((label in violating) == (before in violating) for label, before in pairs)
    corrections = sum(reason == ReviewTask.Reason.CORRECTION for reason, _, _ in rows)
    return ReviewerAgreement(len(pairs), same_label, same_verdict, _ratio(same_label, len(pairs)),
                             _ratio(same_verdict, len(pairs)), corrections)


def agreement_by_stage(policy: Policy, window: Window) -> list[Agreement]:
    return agreement_from_rows(agreement_rows(policy, window))


# --- confusion and audit ------------------------------------------------------------------------


@dataclass
class ConfusionCell:
    reviewer_label: str
    model_label: str
    count: int


@dataclass
class Confusion:
    labels: list[str]
    cells: list[ConfusionCell]

    @property
    def matrix(self) -> list[list[int]]:
        """Rows: the reviewer's label; columns: the model's label, both in `labels` order."""
        index = {label: i for i, label in enumerate(self.labels)}
        grid = [[0] * len(self.labels) for _ in self.labels]
        for cell in self.cells:
            grid[index[cell.reviewer_label]][index[cell.model_label]] = cell.count
        return grid

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        return list(zip(self.labels, self.matrix))

    @property
    def largest(self) -> int:
        return max((cell.count for cell in self.cells), default=0)


def confusion_rows(policy: Policy, window: Window, by_day: bool = False) -> list[dict]:
    return list(_grouped(reviews_in(policy, window), by_day, "label", "model_label").annotate(count=Count("id")))


def confusion(policy: Policy, window: Window) -> Confusion:
    return confusion_from_rows(policy, confusion_rows(policy, window))


def confusion_from_rows(policy: Policy, rows: list[dict]) -> Confusion:
    seen = {row["label"] for row in rows} | {row["model_label"] for row in rows}
    labels = list(policy.labels) + sorted(seen - set(policy.labels))  # a label since retired stays visible
    cells = [ConfusionCell(row["label"], row["model_label"], row["count"]) for row in rows]
    return Confusion(labels, sorted(cells, key=lambda c: (labels.index(c.reviewer_label), labels.index(c.model_label))))


@dataclass
class AuditEstimate:
    band: str  # auto_allow or auto_action
    audited: int
    errors: int  # the reviewer's label differs from the model's
    error_rate: float | None
    ci_low: float  # 95% Wilson interval of the band's error rate
    ci_high: float


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    E. B. Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22(158):209-212. Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and does not
    collapse to a point at 0 or n successes, which matters for small audit samples (Brown, Cai
    and DasGupta 2001, "Interval estimation for a binomial proportion", Statistical Science 16(2)).
    No observations: the whole of [0, 1].
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval always holds p; min/max only undo rounding (at p = 0 the lower end is 0, not 1e-17).
    return max(0.0, min(p, centre - half_width)), min(1.0, max(p, centre + half_width))


def audit_rows(policy: Policy, window: Window, by_day: bool = False) -> list[dict]:
    audited = reviews_in(policy, window).filter(task__reason=ReviewTask.Reason.AUDIT)
    return list(_grouped(audited, by_day, "video__decision")
                .annotate(audited=Count("id"), errors=Count("id", filter=Q(disagrees_with_model=True))))


def audit_from_rows(rows: list[dict]) -> list[AuditEstimate]:
    """Per automatic band: how often the audited decisions were wrong, from reviews in the window."""
    rows = {row["video__decision"]: row for row in rows}
    estimates = []
    for band in (Video.Decision.AUTO_ALLOW, Video.Decision.AUTO_ACTION):
        audited, errors = rows.get(band, {}).get("audited", 0), rows.get(band, {}).get("errors", 0)
        low, high = wilson_interval(errors, audited)
        estimates.append(AuditEstimate(band.value, audited, errors, _ratio(errors, audited), low, high))
    return estimates


def audit_estimates(policy: Policy, window: Window) -> list[AuditEstimate]:
    return audit_from_rows(audit_rows(policy, window))


# --- model quality on reviewer labels -----------------------------------------------------------


@dataclass
class LabeledVideo:
    """A video's latest review in the window with the probabilities the cascade stored for it."""

    reviewed_at: datetime
    label: str
    decided_by: str
    baseline: dict | None
    mllm: dict | None

    @property
    def deciding(self) -> dict | None:
        return {"baseline": self.baseline, "mllm": self.mllm}.get(self.decided_by)


def labeled_videos(policy: Policy, window: Window) -> list[LabeledVideo]:
    """The most recent reviewed videos in the window (at most LABELED_SAMPLE reviews read), newest
    first, each once: a later review of the same video corrects an earlier one."""

    def stage_probabilities(stage: str) -> Subquery:
        latest = Prediction.objects.filter(video=OuterRef("video"), stage=stage).order_by("-created_at", "-id")
        return Subquery(latest.values("probabilities")[:1])

    rows = (reviews_in(policy, window).order_by("-created_at", "-id")
            .annotate(baseline_probs=stage_probabilities(Prediction.Stage.BASELINE),
                      mllm_probs=stage_probabilities(Prediction.Stage.MLLM))
            .values("video_id", "created_at", "label", "model_decided_by", "baseline_probs", "mllm_probs")
            [:LABELED_SAMPLE])
    latest: dict[int, LabeledVideo] = {}
    for row in rows:
        latest.setdefault(row["video_id"], LabeledVideo(row["created_at"], row["label"], row["model_decided_by"],
                                                        row["baseline_probs"], row["mllm_probs"]))
    return list(latest.values())


class BinarySpace:
    """The policy's labels as the binary metrics see them: every non-violating label folds into
    "ok" (its probabilities summed), every violating label stays. For a policy whose only
    non-violating label is "ok" (the demo policy) this changes nothing."""

    def __init__(self, policy: Policy):
        self.violating = tuple(policy.violating_labels)
        self.names = ("ok", *self.violating)

    def label(self, label: str) -> str:
        return label if label in self.violating else "ok"

    def row(self, probabilities: dict) -> list[float]:
        ok = sum(p for label, p in probabilities.items() if label not in self.violating)
        return [ok] + [probabilities.get(label, 0.0) for label in self.violating]


@dataclass
class QualityBucket:
    start: datetime
    n: int
    n_positive: int
    f1: float | None
    precision: float | None
    recall: float | None
    rp60: float | None  # recall at precision >= 0.6, ... 0.9
    rp70: float | None
    rp80: float | None
    rp90: float | None


def quality_over_time(policy: Policy, window: Window, labeled: list[LabeledVideo]) -> list[QualityBucket]:
    """Binary F1 and R@P of the cascade's decisions against reviewer labels, per bucket: each
    video scored with the probabilities of the stage that decided it."""
    space, unit = BinarySpace(policy), window.quality_bucket
    by_bucket = defaultdict(list)
    for video in labeled:
        if video.deciding is not None:
            by_bucket[floor_to(video.reviewed_at, unit)].append(video)
    return [_quality_bucket(start, by_bucket.get(start, []), space) for start in window.starts(unit)]


def _quality_bucket(start: datetime, videos: list[LabeledVideo], space: BinarySpace) -> QualityBucket:
    if not videos:
        return QualityBucket(start, 0, 0, *([None] * (3 + len(RECALL_AT_PRECISION_TARGETS))))
    report = binary_report([space.label(v.label) for v in videos], [space.row(v.deciding) for v in videos],
                           space.names)
    at_precision = [report[f"R@P{round(t * 100)}"] for t in RECALL_AT_PRECISION_TARGETS]
    return QualityBucket(start, report["n"], report["n_positive"], report["f1"], report["precision"],
                         report["recall"], *at_precision)


@dataclass
class TradeoffPoint:
    router: str  # entropy (production) or random (the reference to beat)
    budget: float
    routed_fraction: float
    f1: float


@dataclass
class Tradeoff:
    n: int  # reviewed videos that both stages scored
    baseline_f1: float | None
    mllm_f1: float | None
    points: list[TradeoffPoint] = field(default_factory=list)


def budget_tradeoff(policy: Policy, labeled: list[LabeledVideo]) -> Tradeoff:
    """Binary F1 of a replayed cascade at each MLLM budget, on reviewed videos that both stages
    scored. Those were mostly routed because stage 1 was unsure, so the curve speaks for the hard
    part of the traffic, not for all of it."""
    space = BinarySpace(policy)
    both = [v for v in labeled if v.baseline is not None and v.mllm is not None]
    if not both:
        return Tradeoff(0, None, None)
    labels = [space.label(v.label) for v in both]
    base = np.asarray([space.row(v.baseline) for v in both])  # (N, K)
    mllm = np.asarray([space.row(v.mllm) for v in both])  # (N, K)
    curves = cascade_curves(base, mllm, labels, kinds=[""] * len(both), budgets=TRADEOFF_BUDGETS,
                            routers=("entropy", "random"), random_repeats=TRADEOFF_RANDOM_REPEATS,
                            label_names=space.names, f1_only=True)
    points = [TradeoffPoint(router, point["budget"], point["routed_fraction"], point["f1"])
              for router, curve in curves.items() for point in curve]
    return Tradeoff(len(both), binary_report(labels, base, space.names)["f1"],
                    binary_report(labels, mllm, space.names)["f1"], points)


# --- stage 1 entropy ----------------------------------------------------------------------------


@dataclass
class EntropyBin:
    low: float
    high: float
    count: int


@dataclass
class EntropyHistogram:
    bins: list[EntropyBin]
    sample: int  # baseline predictions counted
    threshold: float | None  # the router's current threshold (nats)
    above_threshold: float | None  # share of the sample at or above it: the MLLM rate it implies
    max_entropy: float  # ln K: a uniform distribution over the policy's labels


def current_threshold(config: CascadeConfig | None) -> float | None:
    """The fixed threshold, or for a budget the one the router used last (it recalibrates as
    traffic comes in, and stores what it used on each routing decision)."""
    if config is None:
        return None
    if config.entropy_threshold is not None:
        return config.entropy_threshold
    return (RoutingDecision.objects.filter(cascade_config=config).order_by("-created_at", "-id")
            .values_list("threshold", flat=True).first())


def entropy_histogram(policy: Policy, window: Window, config: CascadeConfig | None) -> EntropyHistogram:
    entropies = np.asarray(
        Prediction.objects.filter(window.filter("created_at"), stage=Prediction.Stage.BASELINE, video__policy=policy)
        .order_by("-created_at").values_list("entropy", flat=True)[:ENTROPY_SAMPLE], dtype=np.float64)
    max_entropy = math.log(max(len(policy.labels), 2))
    counts, edges = np.histogram(entropies, bins=ENTROPY_BINS, range=(0.0, max_entropy))
    # Rounding can put an entropy a hair above ln K; it belongs in the last bin.
    counts[-1] += int((entropies > max_entropy).sum())
    threshold = current_threshold(config)
    above = float((entropies >= threshold).mean()) if threshold is not None and len(entropies) else None
    bins = [EntropyBin(float(low), float(high), int(n)) for low, high, n in zip(edges[:-1], edges[1:], counts)]
    return EntropyHistogram(bins, len(entropies), threshold, above, max_entropy)


# --- retraining ----------------------------------------------------------------------------------

RECENT_RUNS = 10


@dataclass
class GateResult:
    """One model kind in one training run: the gold-set scores the promotion gate compared."""

    run: int
    finished_at: datetime | None
    status: str
    kind: str
    version: str
    outcome: str  # the candidate's status: active/retired (promoted once) or rejected
    active_f1: float | None
    candidate_f1: float | None
    active_recall_at_p80: float | None
    candidate_recall_at_p80: float | None
    gold_videos: int
    new_labels: int


def _binary(report: dict, name: str) -> float | None:
    value = (report or {}).get("binary", {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _gated_f1(report: dict) -> float | None:
    """The F1 the gate compared: of the decisions under the bands; runs from before the gate
    scored decisions kept only the argmax's."""
    value = (report or {}).get("decisions", {}).get("f1")
    return float(value) if isinstance(value, (int, float)) else _binary(report, "f1")


def gate_results(policy: Policy, window: Window | None = None, limit: int = RECENT_RUNS) -> list[GateResult]:
    """The latest finished training runs' gates, newest first, each model kind a row."""
    runs = (TrainingRun.objects.filter(policy=policy, status__in=TrainingRun.FINISHED)
            .select_related("baseline_candidate", "mllm_candidate").order_by("-finished_at", "-id"))
    if window is not None:
        runs = runs.filter(window.filter("finished_at"))
    rows = []
    for run in runs[:limit]:
        for kind in ("baseline", "mllm"):
            candidate = getattr(run, f"{kind}_candidate")
            if candidate is None:
                continue
            gold, active = candidate.metrics.get("gold", {}), candidate.metrics.get("active_on_gold", {})
            rows.append(GateResult(
                run=run.pk, finished_at=run.finished_at, status=run.status, kind=kind, version=candidate.version,
                outcome=candidate.status, active_f1=_gated_f1(active), candidate_f1=_gated_f1(gold),
                active_recall_at_p80=_binary(active, "R@P80"), candidate_recall_at_p80=_binary(gold, "R@P80"),
                gold_videos=run.gold_examples, new_labels=run.new_labels,
            ))
    return rows


# --- everything on the page ---------------------------------------------------------------------


@dataclass
class Dashboard:
    policy: Policy
    window: Window
    config: CascadeConfig | None
    volume: list[VolumeBucket]
    queue: QueueNow
    queue_over_time: list[QueueBucket]
    reviewers: list[ReviewerThroughput]
    agreement: list[Agreement]
    reviewer_agreement: ReviewerAgreement
    quality: list[QualityBucket]
    entropy: EntropyHistogram
    tradeoff: Tradeoff
    confusion: Confusion
    audit: list[AuditEstimate]
    retraining: list[GateResult]
    # When quality and the budget trade-off were computed, if not on this load (dashboard_cache).
    analysed_at: datetime | None = None

    @property
    def uploaded(self) -> int:
        return sum(b.uploaded for b in self.volume)

    @property
    def scored(self) -> int:
        return sum(b.scored for b in self.volume)

    @property
    def call_rate(self) -> float | None:
        """The share of the window's stage 1 decisions that went to the MLLM."""
        return _ratio(sum(b.routed for b in self.volume), self.scored)

    @property
    def reviews(self) -> int:
        return sum(a.reviews for a in self.agreement)


def active_config(policy: Policy) -> CascadeConfig | None:
    return CascadeConfig.objects.filter(policy=policy, is_active=True).first()


def build(policy: Policy, window: Window) -> Dashboard:
    config = active_config(policy)
    labeled = labeled_videos(policy, window)
    return Dashboard(
        policy=policy, window=window, config=config,
        volume=volume(policy, window),
        queue=queue_now(policy, window), queue_over_time=queue_over_time(policy, window),
        reviewers=reviewer_throughput(policy, window), agreement=agreement_by_stage(policy, window),
        reviewer_agreement=reviewer_agreement(policy, window),
        quality=quality_over_time(policy, window, labeled), entropy=entropy_histogram(policy, window, config),
        tradeoff=budget_tradeoff(policy, labeled), confusion=confusion(policy, window),
        audit=audit_estimates(policy, window), retraining=gate_results(policy),
    )


def _tradeoff_rows(policy: Policy, window: Window) -> list[TradeoffPoint]:
    return budget_tradeoff(policy, labeled_videos(policy, window)).points


# Each table the page shows, as rows for the CSV export: name -> (policy, window) -> dataclasses.
TABLES = {
    "volume": volume,
    "queue": lambda policy, window: [queue_now(policy, window)],
    "queue_over_time": queue_over_time,
    "reviewers": reviewer_throughput,
    "reviewer_days": reviewer_days,
    "agreement": agreement_by_stage,
    "reviewer_agreement": lambda policy, window: [reviewer_agreement(policy, window)],
    "quality": lambda policy, window: quality_over_time(policy, window, labeled_videos(policy, window)),
    "entropy": lambda policy, window: entropy_histogram(policy, window, active_config(policy)).bins,
    "tradeoff": _tradeoff_rows,
    "confusion": lambda policy, window: confusion(policy, window).cells,
    "audit": audit_estimates,
    "retraining": gate_results,
}
