"""What a cascade setting would do, before an admin saves it.

Replays recent traffic under a candidate threshold (or budget) and decision bands: how often
the MLLM would be called, how many videos would reach the review queue, and how good the
final labels would be on the videos reviewers have labeled. Everything is computed from stored
predictions; nothing is re-scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inference.cascade import DecisionBands, threshold_for_budget, violation_probability
from inference.metrics import binary_report

from .models import CascadeConfig, Policy, Prediction, Review

# Recent baseline predictions the projection replays.
WINDOW = 5000
# Below this many labeled videos the quality estimate is not shown: it would mostly be noise.
MIN_LABELED = 20


@dataclass(frozen=True)
class Candidate:
    entropy_threshold: float | None
    mllm_budget: float | None
    allow_below: float
    action_above: float
    audit_rate: float

    @classmethod
    def of(cls, config: CascadeConfig) -> "Candidate":
        return cls(config.entropy_threshold, config.mllm_budget, config.allow_below, config.action_above,
                   config.audit_rate)


@dataclass(frozen=True)
class Projection:
    threshold: float  # nats; inf routes nothing
    videos: int  # recent videos replayed
    days: float  # the time they span
    mllm_call_rate: float
    mllm_calls_per_day: float | None
    review_rate: float  # review band plus the audit sample of automatic decisions
    reviews_per_day: float | None
    routed_without_mllm_score: int  # routed now but never scored by the MLLM: their band is the baseline's
    labeled: int  # reviewer-labeled videos with both stages scored, for the quality estimate
    quality: dict | None  # binary_report of the cascade's final labels against reviewer labels

    def as_dict(self) -> dict:
        data = asdict(self)
        data["threshold"] = None if not np.isfinite(self.threshold) else self.threshold
        return data


def _recent_traffic(policy: Policy):
    rows = list(Prediction.objects.filter(stage=Prediction.Stage.BASELINE, video__policy=policy)
                .order_by("-created_at").values_list("video_id", "entropy", "probabilities", "created_at")[:WINDOW])
    mllm = dict(Prediction.objects.filter(stage=Prediction.Stage.MLLM, video_id__in=[r[0] for r in rows])
                .order_by("created_at").values_list("video_id", "probabilities"))
    return rows, mllm


def _matrix(distributions: list[dict], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[d.get(label, 0.0) for label in labels] for d in distributions], dtype=np.float64)  # (N, K)


def project(policy: Policy, candidate: Candidate) -> Projection:
    labels = tuple(policy.labels)
    rows, mllm = _recent_traffic(policy)
    entropies = np.array([r[1] for r in rows], dtype=np.float64)  # (N,)
    if candidate.entropy_threshold is not None:
        threshold = candidate.entropy_threshold
    else:
        threshold = threshold_for_budget(entropies, candidate.mllm_budget) if len(rows) else 0.0
    routed = entropies >= threshold  # (N,)
    final = [mllm.get(r[0], r[2]) if hit else r[2] for r, hit in zip(rows, routed)]
    bands = DecisionBands(candidate.allow_below, candidate.action_above)
    p_violation = violation_probability(_matrix(final, labels), labels) if rows else np.zeros(0)  # (N,)
    decisions = np.array([bands.decide(float(p)) for p in p_violation])
    automatic = decisions != "human_review"
    review_rate = float(np.mean(~automatic + automatic * candidate.audit_rate)) if rows else 0.0
    days = (rows[0][3] - rows[-1][3]).total_seconds() / 86400 if len(rows) > 1 else 0.0
    per_day = (lambda rate: rate * len(rows) / days) if days > 0 else (lambda rate: None)
    call_rate = float(routed.mean()) if rows else 0.0
    labeled, quality = _quality(policy, labels, threshold)
    return Projection(
        threshold=float(threshold), videos=len(rows), days=days, mllm_call_rate=call_rate,
        mllm_calls_per_day=per_day(call_rate), review_rate=review_rate, reviews_per_day=per_day(review_rate),
        routed_without_mllm_score=int(sum(hit and r[0] not in mllm for r, hit in zip(rows, routed))),
        labeled=labeled, quality=quality,
    )


def _quality(policy: Policy, labels: tuple[str, ...], threshold: float) -> tuple[int, dict | None]:
    """The cascade's binary metrics under `threshold` on reviewer-labeled videos scored by both stages.

    Reviewed videos over-represent the uncertain ones (the review band), so this is a pessimistic,
    biased estimate; the audit sample is the unbiased part of it.
    """
    reviewed = dict(Review.objects.filter(video__policy=policy).order_by("created_at").values_list("video_id", "label"))
    scored: dict[int, dict] = {}
    for video_id, stage, entropy, probabilities in (
        Prediction.objects.filter(video_id__in=list(reviewed)[-WINDOW:])
        .order_by("created_at").values_list("video_id", "stage", "entropy", "probabilities")
    ):
        scored.setdefault(video_id, {})[stage] = (entropy, probabilities)
    both = [(video_id, stages) for video_id, stages in scored.items() if {"baseline", "mllm"} <= set(stages)]
    if len(both) < MIN_LABELED:
        return len(both), None
    final = [stages["mllm"][1] if stages["baseline"][0] >= threshold else stages["baseline"][1] for _, stages in both]
    truth = [reviewed[video_id] for video_id, _ in both]
    return len(both), binary_report(truth, _matrix(final, labels), label_names=labels)
