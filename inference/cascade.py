"""The cascade's router and decision rules (COEF-VQ stage 1 -> stage 2), as pure functions.

Stage 1 scores every video. The Shannon entropy of its class distribution says how unsure
it is; videos at or above a threshold go to the multimodal LLM (stage 2). The threshold is
either fixed or derived from a budget: the fraction of traffic the GPUs can afford.
The final class distribution then goes through decision bands on the violation
probability (1 - p_ok): auto-allow, auto-action, or human review.

Entropies are in nats (natural log): uniform over K classes has entropy ln K
(ln 4 = 1.386 for the demo policy), a one-hot distribution has 0.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import entr

from inference.policy import LABELS

AUTO_ALLOW = "auto_allow"
AUTO_ACTION = "auto_action"
HUMAN_REVIEW = "human_review"
DECISIONS: tuple[str, ...] = (AUTO_ALLOW, AUTO_ACTION, HUMAN_REVIEW)

ROUTERS: tuple[str, ...] = ("entropy", "random", "oracle")


def shannon_entropy(probs) -> float | np.ndarray:
    """Entropy in nats of one distribution (K,) -> float, or of each row of (N, K) -> (N,)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise ValueError(f"probs must be (K,) or (N, K), got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any():
        raise ValueError("probabilities must be non-negative numbers")
    h = entr(p).sum(axis=-1)  # entr(x) = -x ln x, with entr(0) = 0
    return float(h) if p.ndim == 1 else h


def threshold_for_budget(recent_entropies, budget_fraction: float) -> float:
    """The entropy threshold that routes about `budget_fraction` of `recent_entropies` to stage 2.

    Routing is `entropy >= threshold`. Equal entropies cannot be split by a threshold, so
    the routed fraction can only take a few values; we pick the threshold whose fraction is
    closest to the budget, and when two are equally close, the one that stays under it.
    A budget of 0 gives +inf (route nothing); a budget of 1 gives the smallest entropy seen.
    Empty input raises ValueError: there is nothing to calibrate on.
    """
    if not 0.0 <= budget_fraction <= 1.0:
        raise ValueError(f"budget_fraction must be in [0, 1], got {budget_fraction}")
    e = np.asarray(recent_entropies, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("no recent entropies to calibrate the threshold on")
    if not np.isfinite(e).all():
        raise ValueError("entropies must be finite numbers")
    if budget_fraction == 0.0:
        return math.inf

    candidates = np.append(np.unique(e), math.inf)  # ascending; inf routes nothing
    sorted_e = np.sort(e)
    routed = e.size - np.searchsorted(sorted_e, candidates, side="left")  # count of e >= candidate
    target = budget_fraction * e.size
    gap = np.abs(routed - target)
    best = np.flatnonzero(gap == gap.min())
    # Larger thresholds route fewer videos: the last of the equally close ones stays under budget.
    return float(candidates[best[-1]])


def route(entropy: float, threshold: float) -> bool:
    """True when the video goes to the MLLM: its stage-1 entropy is at or above the threshold."""
    if math.isnan(entropy) or math.isnan(threshold):
        raise ValueError("entropy and threshold must be numbers, not NaN")
    return entropy >= threshold


@dataclass(frozen=True)
class RouterConfig:
    """Either a fixed entropy threshold (nats) or a budget (fraction of traffic sent to the MLLM)."""

    threshold: float | None = None
    budget: float | None = None

    def __post_init__(self):
        if (self.threshold is None) == (self.budget is None):
            raise ValueError("set exactly one of threshold and budget")
        if self.threshold is not None and (math.isnan(self.threshold) or self.threshold < 0):
            raise ValueError(f"threshold must be >= 0 nats, got {self.threshold}")
        if self.budget is not None and not 0.0 <= self.budget <= 1.0:
            raise ValueError(f"budget must be in [0, 1], got {self.budget}")

    def resolve_threshold(self, recent_entropies=None) -> float:
        """The threshold to use now: the fixed one, or the budget's one on recent traffic."""
        if self.threshold is not None:
            return self.threshold
        if recent_entropies is None:
            raise ValueError("a budget router needs recent entropies to set its threshold")
        return threshold_for_budget(recent_entropies, self.budget)


@dataclass(frozen=True)
class DecisionBands:
    """Bands on p_violation = 1 - p_ok.

    p < allow_below -> auto_allow; p > action_above -> auto_action; otherwise human_review.
    allow_below=0, action_above=1 sends everything to review; allow_below == action_above
    leaves no review band (except exactly at that value).
    """

    allow_below: float
    action_above: float

    def __post_init__(self):
        for name in ("allow_below", "action_above"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.allow_below > self.action_above:
            raise ValueError(
                f"allow_below ({self.allow_below}) must not exceed action_above ({self.action_above})"
            )

    def decide(self, p_violation: float) -> str:
        if math.isnan(p_violation) or not -1e-9 <= p_violation <= 1.0 + 1e-9:
            raise ValueError(f"p_violation must be a probability, got {p_violation}")
        if p_violation < self.allow_below:
            return AUTO_ALLOW
        if p_violation > self.action_above:
            return AUTO_ACTION
        return HUMAN_REVIEW


def violation_probability(probs, label_names: tuple[str, ...] = LABELS,
                          violating: tuple[str, ...] | None = None) -> float | np.ndarray:
    """P(violation) for one distribution (K,) or each row of (N, K): the probability of the
    `violating` labels together, or 1 - p_ok when they are not given."""
    p = np.asarray(probs, dtype=np.float64)
    if violating is None:
        p_violation = 1.0 - p[..., label_names.index("ok")]
    else:
        p_violation = p[..., [label_names.index(label) for label in violating]].sum(axis=-1)
    return float(p_violation) if p.ndim == 1 else p_violation


def flagged(p_violation, bands: DecisionBands) -> np.ndarray:
    """The product's decision rule as a yes/no: True where a video is not allowed automatically
    (actioned, or held for a reviewer), for each P(violation) of (N,)."""
    p = np.asarray(p_violation, dtype=np.float64)
    return np.array([bands.decide(float(value)) != AUTO_ALLOW for value in p.ravel()], dtype=bool).reshape(p.shape)


def audit_sample(video_key: str, rate: float, salt: str) -> bool:
    """Whether an auto-decided video is drawn for a human audit.

    Deterministic in (salt, video_key): retrying a task never changes the draw, and a new
    salt draws a fresh, independent sample. About `rate` of keys are drawn.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    digest = hashlib.sha256(f"{salt}\x00{video_key}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    return u < rate


@dataclass
class CascadeResult:
    probs: np.ndarray  # (N, K) final distribution: the MLLM's where routed, the baseline's elsewhere
    predictions: np.ndarray  # (N,) label names, argmax of probs
    routed: np.ndarray  # (N,) bool
    routed_fraction: float
    threshold: float | None  # the entropy threshold (nats), for the entropy router only


def simulate_cascade(
    baseline_probs,
    mllm_probs,
    labels,
    budget: float,
    router: str = "entropy",
    seed: int = 0,
    label_names: tuple[str, ...] = LABELS,
) -> CascadeResult:
    """Replay the cascade offline on a benchmark where both stages scored every video.

    `labels` are the true label names (only the oracle looks at them). Routers:
    - "entropy": the production rule, with the budget's threshold taken on this batch;
    - "random": round(budget * N) videos drawn at random (seeded);
    - "oracle": the baseline's mistakes, at most round(budget * N) of them (a seeded draw
      when there are more): the best any router could do with this budget.
    """
    base = np.asarray(baseline_probs, dtype=np.float64)  # (N, K)
    mllm = np.asarray(mllm_probs, dtype=np.float64)  # (N, K)
    y_true = np.asarray(labels)
    if base.ndim != 2 or base.shape != mllm.shape or base.shape[1] != len(label_names):
        raise ValueError(f"need two (N, {len(label_names)}) arrays, got {base.shape} and {mllm.shape}")
    if len(y_true) != len(base):
        raise ValueError(f"{len(y_true)} labels for {len(base)} videos")
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be in [0, 1], got {budget}")
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {ROUTERS}, got {router!r}")

    n = len(base)
    n_routed_max = int(round(budget * n))
    rng = np.random.default_rng(seed)
    routed = np.zeros(n, dtype=bool)
    threshold = None
    if n == 0:
        pass
    elif router == "entropy":
        entropies = shannon_entropy(base)  # (N,)
        threshold = threshold_for_budget(entropies, budget)
        routed = entropies >= threshold
    elif router == "random":
        routed[rng.choice(n, size=n_routed_max, replace=False)] = True
    else:
        names = np.asarray(label_names)
        mistakes = np.flatnonzero(names[base.argmax(axis=1)] != y_true)
        if len(mistakes) > n_routed_max:
            mistakes = rng.choice(mistakes, size=n_routed_max, replace=False)
        routed[mistakes] = True

    final = np.where(routed[:, None], mllm, base)  # (N, K)
    predictions = np.asarray(label_names)[final.argmax(axis=1)] if n else np.asarray([], dtype=str)
    return CascadeResult(
        probs=final,
        predictions=predictions,
        routed=routed,
        routed_fraction=float(routed.mean()) if n else 0.0,
        threshold=threshold,
    )
