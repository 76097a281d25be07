import json

import numpy as np
import pytest

from inference.cascade import DecisionBands
from inference.metrics import (
    band_report,
    binary_report,
    confusion,
    evaluation_report,
    macro_f1,
    per_kind_accuracy,
    recall_at_precision,
)


def _probs_from_p_violation(p_violation, violating_label_index=1):
    """4-class rows whose ok column is 1 - p_violation, the rest on one violating label."""
    p = np.zeros((len(p_violation), 4))
    p[:, 0] = 1 - np.asarray(p_violation)
    p[:, violating_label_index] = p_violation
    return p


def test_recall_at_precision_matches_hand_computation():
    # Sorted by score: + + - + - - + -   (4 positives)
    # top-k precision/recall: k=1 1/1,1/4  k=2 2/2,2/4  k=3 2/3,2/4  k=4 3/4,3/4
    #                          k=5 3/5,3/4  k=6 3/6,3/4  k=7 4/7,4/4  k=8 4/8,4/4
    scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    y = [1, 1, 0, 1, 0, 0, 1, 0]
    assert recall_at_precision(y, scores, 0.9) == 0.5  # k=2
    assert recall_at_precision(y, scores, 0.75) == 0.75  # k=4
    assert recall_at_precision(y, scores, 0.6) == 0.75  # k=5 has precision exactly 0.6
    assert recall_at_precision(y, scores, 0.55) == 1.0  # k=7: 4/7 = 0.571
    assert recall_at_precision([0, 0, 0], [0.1, 0.2, 0.3], 0.5) is None


def test_recall_at_precision_is_zero_when_no_threshold_reaches_it():
    # The highest-scored example is negative, and precision never gets to 0.9.
    assert recall_at_precision([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 0.9) == 0.0


def test_binary_report_on_hand_made_example():
    y = ["scam", "drugs", "ok", "weapons", "ok", "ok", "scam", "ok"]
    p_violation = [0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1]
    report = binary_report(y, _probs_from_p_violation(p_violation))
    # Argmax decision: violating when p_violation > 0.5 -> the first five are flagged.
    # TP = 3 (scam, drugs, weapons), FP = 2, FN = 1 (scam at 0.3).
    assert report["precision"] == pytest.approx(3 / 5)
    assert report["recall"] == pytest.approx(3 / 4)
    assert report["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert report["R@P90"] == 0.5 and report["R@P80"] == 0.5
    assert report["R@P70"] == 0.75 and report["R@P60"] == 0.75
    assert report["n"] == 8 and report["n_positive"] == 4
    json.dumps(report)


def test_band_report_scores_the_decision_bands_not_the_argmax():
    y = np.array([True, True, False, True, False, False, True, False])
    p_violation = [0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1]
    # Allowed below 0.2, actioned above 0.9: everything but the last is flagged (actioned or held).
    report = band_report(y, p_violation, DecisionBands(0.2, 0.9))
    assert report["recall"] == 1.0 and report["precision"] == pytest.approx(4 / 7)
    assert (report["wrongly_allowed"], report["wrongly_actioned"], report["to_review"]) == (0, 0, 6)
    # The same probabilities under narrower bands: the argmax's 0.5 is no part of the rule.
    narrow = band_report(y, p_violation, DecisionBands(0.5, 0.5))
    assert narrow["recall"] == pytest.approx(3 / 4) and narrow["precision"] == pytest.approx(3 / 5)
    assert (narrow["wrongly_allowed"], narrow["wrongly_actioned"], narrow["to_review"]) == (1, 2, 0)
    assert report["R@P70"] == narrow["R@P70"] == binary_report(
        np.where(y, "scam", "ok"), _probs_from_p_violation(p_violation))["R@P70"]
    json.dumps(report)


def test_binary_counts_any_violating_label_as_positive():
    # Predicting "drugs" for a "scam" video is still a correct flag.
    y = ["scam", "ok"]
    probs = np.array([[0.1, 0.2, 0.7, 0.0], [0.9, 0.05, 0.05, 0.0]])
    report = binary_report(y, probs)
    assert report["precision"] == 1.0 and report["recall"] == 1.0


def test_multiclass_metrics():
    y_true = ["ok", "ok", "scam", "drugs", "drugs"]
    y_pred = ["ok", "scam", "scam", "drugs", "ok"]
    # F1 ok 0.5, scam 2/3, drugs 2/3; weapons is absent from both and left out.
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    cm = confusion(y_true, y_pred)
    assert cm["labels"] == ["ok", "scam", "drugs", "weapons"]
    assert cm["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    kinds = ["easy_ok", "context_ok", "caption", "speech_only", "caption"]
    acc = per_kind_accuracy(kinds, y_true, y_pred)
    assert list(acc) == ["easy_ok", "caption", "speech_only", "context_ok"]
    assert acc["caption"] == {"n": 2, "accuracy": 0.5}
    assert acc["speech_only"] == {"n": 1, "accuracy": 1.0}
    assert acc["context_ok"] == {"n": 1, "accuracy": 0.0}


def test_evaluation_report_is_json_serialisable():
    y = ["ok", "scam", "ok", "weapons"]
    probs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.4, 0.0, 0.6, 0], [0.1, 0, 0, 0.9]])
    report = evaluation_report(y, probs, kinds=["easy_ok", "caption", "context_ok", "caption"])
    assert report["accuracy"] == 0.75
    assert report["per_kind"]["context_ok"]["accuracy"] == 0.0
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_report_counts_as_scikit_learn_does(seed):
    """binary_report counts with numpy for speed; its numbers are sklearn's, ties and all."""
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    p_violation = np.round(rng.random(300), 1)  # rounded: many tied scores
    y = rng.random(300) < 0.3 + 0.4 * p_violation
    labels = np.where(y, "scam", "ok")
    report = binary_report(labels, _probs_from_p_violation(p_violation))
    flags = p_violation > 0.5
    assert report["precision"] == pytest.approx(precision_score(y, flags, zero_division=0))
    assert report["recall"] == pytest.approx(recall_score(y, flags, zero_division=0))
    assert report["f1"] == pytest.approx(f1_score(y, flags, zero_division=0))
    assert report["average_precision"] == pytest.approx(average_precision_score(y, p_violation))
