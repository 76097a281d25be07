"""Evaluation metrics for the moderation models: scikit-learn's definitions (the binary counts
done with numpy, which the dashboard and the cascade curves need hundreds of times per call).

Binary metrics follow POLICY.md: any violating label (scam, drugs, weapons) is the positive
class, and the score for it is p_violation = 1 - p_ok. Every function returns plain
Python types (dicts, lists, floats, ints, None) so results can go straight to JSON.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
)

from inference.cascade import AUTO_ACTION, AUTO_ALLOW, HUMAN_REVIEW, DecisionBands, flagged
from inference.policy import KINDS, LABELS

RECALL_AT_PRECISION_TARGETS: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)


def _label_array(y) -> np.ndarray:
    return np.asarray([str(v) for v in y], dtype=object)


def recall_at_precision(y_binary, scores, target_precision: float) -> float | None:
    """The highest recall among thresholds whose precision is >= target (0.0 if none reaches it).

    None when there is no positive example: recall is undefined then.
    """
    [recall], _ = _curve_metrics(np.asarray(y_binary, dtype=bool), scores, (target_precision,))
    return recall


def _curve_metrics(y: np.ndarray, scores, targets: tuple[float, ...]) -> tuple[list[float | None], float | None]:
    """(recall at each target precision, average precision) from one precision-recall curve; all
    None without a positive example. Average precision is sklearn's step sum over the same curve
    (`average_precision_score` would compute the curve again)."""
    if not y.any():
        return [None] * len(targets), None
    precision, recall, _ = precision_recall_curve(y, np.asarray(scores, dtype=np.float64))
    # The curve's last point (precision 1, recall 0) has no threshold; it only ever adds recall 0.
    at = [float(recall[precision >= target].max()) if (precision >= target).any() else 0.0 for target in targets]
    return at, float(-np.sum(np.diff(recall) * precision[:-1]))


def _counts_report(y: np.ndarray, flags: np.ndarray, scores: np.ndarray) -> dict:
    """n, positives, precision / recall / F1 of boolean flags (zero where undefined, recall None
    without a positive), R@P60..90 and average precision of the scores: counted with numpy, as
    sklearn's metrics count them, because the dashboard and the cascade curves call this hundreds
    of times per page."""
    tp, fp, fn = int(np.sum(y & flags)), int(np.sum(~y & flags)), int(np.sum(y & ~flags))
    at_precision, average_precision = _curve_metrics(y, scores, RECALL_AT_PRECISION_TARGETS)
    report = {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if y.any() else None,
        "f1": float(f1_along(y, flags)),
    }
    report.update({f"R@P{round(t * 100)}": value for t, value in zip(RECALL_AT_PRECISION_TARGETS, at_precision)})
    report["average_precision"] = average_precision
    return report


def binary_report(y_true_labels, probs, label_names: tuple[str, ...] = LABELS) -> dict:
    """Violation-vs-ok metrics.

    f1/precision/recall use the argmax decision (predicted label != ok); "R@P60" etc. are the
    recall at precision >= 0.6 ... 0.9 along the precision-recall curve of p_violation, and
    "average_precision" its area. Undefined values (no positives) are None.
    """
    p = np.asarray(probs, dtype=np.float64)  # (N, K)
    y_true = _label_array(y_true_labels)
    if p.ndim != 2 or p.shape != (len(y_true), len(label_names)):
        raise ValueError(f"probs must be ({len(y_true)}, {len(label_names)}), got {p.shape}")
    ok = label_names.index("ok")
    y_bin = y_true != "ok"  # (N,)
    p_violation = 1.0 - p[:, ok]  # (N,)
    pred_bin = p.argmax(axis=1) != ok  # (N,)
    return _counts_report(y_bin, pred_bin, p_violation)


def band_report(y_violating, p_violation, bands: DecisionBands) -> dict:
    """Violation-vs-ok metrics of the product's decision rule, not the argmax.

    The bands put a video in one of three places: allowed, actioned, or held for a reviewer. A
    violation is caught when it is not allowed (a reviewer then sees it), so precision, recall
    and f1 count a video as flagged when it is actioned or held; `wrongly_allowed` and
    `wrongly_actioned` are the automatic decisions a reviewer would overturn, `to_review` the
    reviewers' share of the work. R@P and average precision are the threshold-free curve of
    p_violation, as in `binary_report`.
    """
    y = np.asarray(y_violating, dtype=bool)  # (N,)
    p = np.asarray(p_violation, dtype=np.float64)  # (N,)
    if p.shape != y.shape:
        raise ValueError(f"{len(y)} labels for {p.shape} probabilities")
    decisions = np.array([bands.decide(float(value)) for value in p], dtype=object)  # (N,)
    flags = flagged(p, bands)  # (N,)
    return {
        **_counts_report(y, flags, p),
        "wrongly_allowed": int((y & (decisions == AUTO_ALLOW)).sum()),
        "wrongly_actioned": int((~y & (decisions == AUTO_ACTION)).sum()),
        "to_review": int((decisions == HUMAN_REVIEW).sum()),
    }


def f1_along(y: np.ndarray, flags: np.ndarray, axis: int = -1) -> np.ndarray:
    """Binary F1 of boolean flags against boolean truth along `axis` (0 where nothing is positive):
    sklearn's f1_score with zero_division=0, for many resamples or cascade points at once."""
    tp = np.sum(y & flags, axis=axis)
    wrong = np.sum(y ^ flags, axis=axis)  # false positives + false negatives
    return np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(np.shape(tp), dtype=np.float64), where=(2 * tp + wrong) > 0)


def paired_f1_difference(y_violating, active_flags, candidate_flags, *, confidence: float = 0.95,
                         resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(F1 of the candidate minus F1 of the active decisions, a one-sided lower confidence bound
    on that difference). Both decided the same videos, so the videos are resampled together (a
    paired bootstrap): what one flip of one video does to F1 is part of the interval, and a
    lucky gold set cannot pass for an improvement."""
    y = np.asarray(y_violating, dtype=bool)  # (N,)
    a = np.asarray(active_flags, dtype=bool)  # (N,)
    b = np.asarray(candidate_flags, dtype=bool)  # (N,)
    if not len(y) == len(a) == len(b) or len(y) < 2:
        raise ValueError(f"need two or more videos decided by both models, got {len(y)}, {len(a)}, {len(b)}")
    difference = float(f1_along(y, b) - f1_along(y, a))
    if np.array_equal(a, b):
        return difference, difference  # the same decisions everywhere: nothing to resample
    result = bootstrap((y, a, b), lambda y, a, b, axis: f1_along(y, b, axis) - f1_along(y, a, axis),
                       paired=True, vectorized=True, n_resamples=resamples, confidence_level=confidence,
                       alternative="greater", method="percentile", rng=np.random.default_rng(seed))
    return difference, float(result.confidence_interval.low)


def macro_f1(y_true, y_pred, labels: tuple[str, ...] = LABELS) -> float:
    """Unweighted mean F1 over the labels that occur in y_true or y_pred.

    Labels absent from both are left out rather than counted as F1 = 0.
    """
    y_true, y_pred = _label_array(y_true), _label_array(y_pred)
    present = [label for label in labels if (y_true == label).any() or (y_pred == label).any()]
    if not present:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def per_kind_accuracy(kinds, y_true, y_pred) -> dict[str, dict]:
    """{kind: {"n": count, "accuracy": fraction right}}, in POLICY.md's kind order, then others."""
    kinds, y_true, y_pred = _label_array(kinds), _label_array(y_true), _label_array(y_pred)
    if not len(kinds) == len(y_true) == len(y_pred):
        raise ValueError("kinds, y_true and y_pred must have the same length")
    present = set(kinds.tolist())
    ordered = [k for k in KINDS if k in present] + sorted(present - set(KINDS))
    out = {}
    for kind in ordered:
        mask = kinds == kind
        out[kind] = {"n": int(mask.sum()), "accuracy": float(accuracy_score(y_true[mask], y_pred[mask]))}
    return out


def confusion(y_true, y_pred, labels: tuple[str, ...] = LABELS) -> dict:
    """{"labels": [...], "matrix": rows = true label, columns = predicted label (counts)}."""
    matrix = confusion_matrix(_label_array(y_true), _label_array(y_pred), labels=list(labels))
    return {"labels": list(labels), "matrix": matrix.astype(int).tolist()}


def evaluation_report(y_true, probs, kinds=None, label_names: tuple[str, ...] = LABELS) -> dict:
    """Everything a model evaluation reports: accuracy, macro-F1, binary metrics, confusion, per kind."""
    p = np.asarray(probs, dtype=np.float64)  # (N, K)
    y_true = _label_array(y_true)
    y_pred = np.asarray(label_names, dtype=object)[p.argmax(axis=1)] if len(p) else np.asarray([], dtype=object)
    report = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else None,
        "macro_f1": macro_f1(y_true, y_pred, label_names),
        "binary": binary_report(y_true, p.reshape(len(y_true), len(label_names)), label_names),
        "confusion": confusion(y_true, y_pred, label_names),
    }
    if kinds is not None:
        report["per_kind"] = per_kind_accuracy(kinds, y_true, y_pred)
    return report
