"""What a cascade setting would do, before an admin saves it.

Replays recent traffic under a candidate threshold (or budget) and decision bands: how often
the MLLM would be called, how many videos would reach the review queue, and how good the
product's decisions would be on the videos reviewers have labeled. Everything is computed from
stored predictions of the candidate's baseline (another baseline's entropies mean something
else, and the router never pools them); nothing is re-scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Min
from django.utils import timezone
from django.utils.timesince import timesince

from inference.cascade import DecisionBands, threshold_for_budget, violation_probability
from inference.metrics import band_report

from .models import CascadeConfig, ModelVersion, Policy, Prediction, Review, Video

# Recent baseline predictions the projection replays.
WINDOW = 5000
# Below this many labeled videos the quality estimate is not shown: it would mostly be noise.
MIN_LABELED = 20
# Per-day figures are counted over the last day, once the policy has a whole day of traffic: a
# few minutes of uploads, stretched to a day, say nothing about its rhythm.
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Candidate:
    entropy_threshold: float | None
    mllm_budget: float | None
    allow_below: float
    action_above: float
    audit_rate: float
    baseline_version_id: int | None  # the baseline whose entropies route; None: no baseline
    stage2_decides: bool = True  # False: routed videos keep stage 1's verdict and go to a reviewer

    @classmethod
    def of(cls, config: CascadeConfig) -> "Candidate":
        return cls(config.entropy_threshold, config.mllm_budget, config.allow_below, config.action_above,
                   config.audit_rate, config.baseline_version_id, config.stage2_decides)


@dataclass(frozen=True)
class Projection:
    threshold: float  # nats; inf routes nothing
    videos: int  # recent videos the candidate's baseline scored, replayed
    mllm_call_rate: float
    mllm_calls_per_day: int | None  # None: see `note`
    review_rate: float  # review band plus the audit sample of automatic decisions
    reviews_per_day: int | None
    uploads_last_day: int | None
    note: str  # why a figure is missing, in a sentence; empty when none is
    routed_without_mllm_score: int  # routed now but never scored by the MLLM: their band is the baseline's
    labeled: int  # reviewer-labeled videos with both stages scored, for the quality estimate
    quality: dict | None  # inference.metrics.band_report of the decisions against reviewer labels

    def as_dict(self) -> dict:
        data = asdict(self)
        data["threshold"] = None if not np.isfinite(self.threshold) else self.threshold
        return data


def _recent_traffic(baseline: ModelVersion):
    rows = list(Prediction.objects.filter(stage=Prediction.Stage.BASELINE, model_version=baseline)
                .order_by("-created_at").values_list("video_id", "entropy", "probabilities")[:WINDOW])
    mllm = dict(Prediction.objects.filter(stage=Prediction.Stage.MLLM, video_id__in=[r[0] for r in rows])
                .order_by("created_at").values_list("video_id", "probabilities"))
    return rows, mllm


def _matrix(distributions: list[dict], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[d.get(label, 0.0) for label in labels] for d in distributions], dtype=np.float64)  # (N, K)


def _threshold(baseline: ModelVersion, candidate: Candidate) -> float:
    """The router's threshold (scoring.current_threshold) for the candidate's settings."""
    if candidate.entropy_threshold is not None:
        return candidate.entropy_threshold
    history = baseline.routing_entropies()
    return threshold_for_budget(history, candidate.mllm_budget) if history else 0.0


def _uploads_last_day(policy: Policy, now: datetime) -> tuple[int | None, str]:
    first = Video.objects.filter(policy=policy).aggregate(first=Min("created_at"))["first"]
    if first is None:
        return None, "No video has been uploaded yet, so there are no per-day figures."
    if now - first < DAY:
        return None, (f"The first video came {timesince(first, now)} ago; per-day figures are counted over a "
                      "whole day of traffic, not stretched from less.")
    return Video.objects.filter(policy=policy, created_at__gt=now - DAY).count(), ""


def project(policy: Policy, candidate: Candidate, now: datetime | None = None) -> Projection:
    labels, violating = tuple(policy.labels), tuple(policy.violating_labels)
    baseline = (ModelVersion.objects.filter(pk=candidate.baseline_version_id, policy=policy,
                                            kind=ModelVersion.Kind.BASELINE).first()
                if candidate.baseline_version_id is not None else None)
    if baseline is None:
        return Projection(threshold=float("inf"), videos=0, mllm_call_rate=0.0, mllm_calls_per_day=None,
                          review_rate=0.0, reviews_per_day=None, uploads_last_day=None,
                          note="Without a baseline nothing is scored: videos rest extracted.",
                          routed_without_mllm_score=0, labeled=0, quality=None)
    bands = DecisionBands(candidate.allow_below, candidate.action_above)
    rows, mllm = _recent_traffic(baseline)
    threshold = _threshold(baseline, candidate)
    routed = np.array([r[1] >= threshold for r in rows], dtype=bool)  # (N,)
    final = [mllm.get(r[0], r[2]) if hit and candidate.stage2_decides else r[2] for r, hit in zip(rows, routed)]
    p_violation = violation_probability(_matrix(final, labels), labels, violating) if rows else np.zeros(0)  # (N,)
    decisions = np.array([bands.decide(float(p)) for p in p_violation])
    # On trial, a reviewer decides every routed video.
    automatic = (decisions != "human_review") & (candidate.stage2_decides | ~routed)
    review_rate = float(np.mean(~automatic + automatic * candidate.audit_rate)) if rows else 0.0
    call_rate = float(routed.mean()) if rows else 0.0
    uploads, note = _uploads_last_day(policy, now or timezone.now())
    if not rows:
        note = f"{baseline} has not scored any video yet. " + note
    per_day = (lambda rate: round(rate * uploads)) if uploads is not None and rows else (lambda rate: None)
    labeled, quality = _quality(policy, baseline, threshold if candidate.stage2_decides else float("inf"), bands)
    return Projection(
        threshold=float(threshold), videos=len(rows), mllm_call_rate=call_rate,
        mllm_calls_per_day=per_day(call_rate), review_rate=review_rate, reviews_per_day=per_day(review_rate),
        uploads_last_day=uploads, note=note.strip(),
        routed_without_mllm_score=int(sum(hit and r[0] not in mllm for r, hit in zip(rows, routed))),
        labeled=labeled, quality=quality,
    )


def _quality(policy: Policy, baseline: ModelVersion, threshold: float, bands: DecisionBands) -> tuple[int, dict | None]:
    """The product's decisions under `threshold` and `bands` on reviewer-labeled videos that this
    baseline and the MLLM both scored, against the reviewers' latest labels (threshold inf: stage
    1's verdict everywhere, as while stage 2 is on trial).

    Reviewed videos over-represent the uncertain ones (the review band), so this is a pessimistic,
    biased estimate; the audit sample is the unbiased part of it.
    """
    labels, violating = tuple(policy.labels), tuple(policy.violating_labels)
    reviewed = dict(Review.objects.filter(video__policy=policy).order_by("created_at", "id")
                    .values_list("video_id", "label"))
    videos = list(reviewed)[-WINDOW:]
    stage1 = {video_id: (entropy, probabilities) for video_id, entropy, probabilities in
              Prediction.objects.filter(video_id__in=videos, stage=Prediction.Stage.BASELINE, model_version=baseline)
              .values_list("video_id", "entropy", "probabilities")}
    stage2 = dict(Prediction.objects.filter(video_id__in=list(stage1), stage=Prediction.Stage.MLLM)
                  .order_by("created_at", "id").values_list("video_id", "probabilities"))
    both = [video_id for video_id in stage1 if video_id in stage2]
    if len(both) < MIN_LABELED:
        return len(both), None
    final = [stage2[video_id] if stage1[video_id][0] >= threshold else stage1[video_id][1] for video_id in both]
    truth = np.array([reviewed[video_id] in violating for video_id in both])
    p_violation = violation_probability(_matrix(final, labels), labels, violating)
    return len(both), band_report(truth, p_violation, bands)
