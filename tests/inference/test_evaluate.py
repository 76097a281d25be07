"""Cascade evaluation on hand-made probabilities, where the right answers are known."""

import json

import numpy as np
import pytest

from inference.evaluate import (
    cascade_curves,
    check_targets,
    evaluate_split,
    hard_mask,
    model_report,
    smallest_matching_budget,
)
from inference.policy import LABELS

N_EASY_OK, N_CAPTION, N_HARD = 50, 40, 10  # 10 % hard, like realistic traffic


def one_hot(label: str, confidence: float = 0.97) -> np.ndarray:
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    p = np.full(len(LABELS), rest)
    p[LABELS.index(label)] = confidence
    return p


@pytest.fixture
def split():
    """Baseline: confident and right on easy videos, unsure and wrong (says ok) on the hard,
    violating ones. MLLM: right everywhere."""
    rng = np.random.default_rng(0)
    labels = ["ok"] * N_EASY_OK + ["scam"] * N_CAPTION + ["drugs"] * N_HARD
    kinds = ["easy_ok"] * N_EASY_OK + ["caption"] * N_CAPTION + ["speech_only"] * N_HARD
    baseline = [one_hot(y, 0.9 + 0.09 * rng.random()) for y in labels[: N_EASY_OK + N_CAPTION]]
    baseline += [np.array([0.31, 0.23, 0.23, 0.23]) + 0.01 * rng.random(4) for _ in range(N_HARD)]
    baseline = np.array([p / p.sum() for p in baseline])
    mllm = np.array([one_hot(y) for y in labels])
    return baseline, mllm, labels, kinds


def test_hard_mask_picks_policy_hard_kinds():
    assert hard_mask(["easy_ok", "speech_only", "launder", "caption", "context_ok"]).tolist() == [
        False, True, True, False, True,
    ]  # fmt: skip


def test_model_report_shows_the_baseline_failing_on_hard_kinds(split):
    baseline, mllm, labels, kinds = split
    base = model_report(baseline, labels, kinds)
    full = model_report(mllm, labels, kinds)
    assert base["hard"]["n"] == N_HARD and base["hard"]["f1"] == 0.0 and base["hard"]["accuracy"] == 0.0
    assert full["hard"]["f1"] == 1.0 and full["binary"]["f1"] == 1.0
    assert base["per_kind"]["speech_only"]["accuracy"] == 0.0 and base["per_kind"]["easy_ok"]["accuracy"] == 1.0
    assert base["binary"]["recall"] == pytest.approx(N_CAPTION / (N_CAPTION + N_HARD))
    for key in ("R@P60", "R@P70", "R@P80", "R@P90"):
        assert key in base["binary"]
    assert base["mean_entropy_nats"] > full["mean_entropy_nats"]
    per_kind = base["entropy_per_kind"]
    assert set(per_kind) == {"easy_ok", "caption", "speech_only"} and per_kind["speech_only"]["n"] == N_HARD
    # the router's view: the hard kind sits above every easy video's entropy
    assert per_kind["speech_only"]["q25"] > max(per_kind["easy_ok"]["q75"], per_kind["caption"]["q75"])


def test_oracle_ge_entropy_gt_random_at_every_budget(split):
    baseline, mllm, labels, kinds = split
    curves = cascade_curves(baseline, mllm, labels, kinds, budgets=(0.05, 0.1, 0.2, 0.3), random_repeats=10)
    for oracle, entropy, random in zip(curves["oracle"], curves["entropy"], curves["random"]):
        assert oracle["f1"] >= entropy["f1"] > random["f1"] >= 0.0
        assert random["repeats"] == 10 and random["f1_std"] >= 0.0
    # the hard videos are the most uncertain: at a 10 % budget the entropy router sends exactly them
    at_10 = curves["entropy"][1]
    assert at_10["routed_fraction"] == pytest.approx(0.1) and at_10["hard_routed_fraction"] == 1.0
    assert at_10["f1"] == 1.0 and at_10["hard_f1"] == 1.0
    assert at_10["threshold_nats"] is not None and 0.0 < at_10["threshold_nats"] < np.log(4)


def test_smallest_budget_is_the_hard_fraction_when_the_baseline_knows_what_it_does_not_know(split):
    baseline, mllm, labels, kinds = split
    found = smallest_matching_budget(baseline, mllm, labels, tolerance=0.01)
    assert found["mllm_f1"] == 1.0 and found["baseline_f1"] < 0.99
    # each hard video routed fixes one false negative; within 0.01 of F1 = 1 needs all 10
    assert found["budget"] == pytest.approx(0.10)
    assert found["f1"] >= found["mllm_f1"] - 0.01


def test_smallest_budget_is_zero_when_the_mllm_adds_nothing(split):
    baseline, _, labels, _ = split
    assert smallest_matching_budget(baseline, baseline, labels)["budget"] == 0.0


def test_random_router_needs_a_larger_budget_than_entropy(split):
    baseline, mllm, labels, _ = split
    entropy = smallest_matching_budget(baseline, mllm, labels, router="entropy")["budget"]
    random = smallest_matching_budget(baseline, mllm, labels, router="random")["budget"]
    assert random > entropy


def test_evaluate_split_is_json_safe_and_checks_the_targets(split):
    baseline, mllm, labels, kinds = split
    report = evaluate_split(baseline, mllm, labels, kinds, random_repeats=5)
    text = json.dumps(report, allow_nan=False)  # no numpy types, no NaN or inf
    assert json.loads(text)["n"] == len(labels)
    assert report["hard_fraction"] == pytest.approx(0.1)
    assert set(report["cascade"]) == {"entropy", "random", "oracle"}
    assert [p["budget"] for p in report["cascade"]["entropy"]] == [0.05, 0.1, 0.2, 0.3]
    targets = report["targets"]
    assert targets["hard_kind_gain"]["gain"] == pytest.approx(1.0) and targets["hard_kind_gain"]["met"]
    assert targets["cascade_budget"]["met"] and targets["cascade_budget"]["limit"] == pytest.approx(0.15)
    assert targets["entropy_beats_random"]["met"]


def test_targets_fail_when_the_mllm_is_no_better_on_hard_kinds(split):
    baseline, _, labels, kinds = split
    report = evaluate_split(baseline, baseline, labels, kinds, random_repeats=2)
    targets = check_targets(report)
    assert not targets["hard_kind_gain"]["met"]
    assert not targets["entropy_beats_random"]["met"]  # same F1 everywhere: entropy does not beat random


def test_mismatched_shapes_are_refused(split):
    baseline, mllm, labels, kinds = split
    with pytest.raises(ValueError):
        evaluate_split(baseline, mllm[:-1], labels, kinds)
    with pytest.raises(ValueError):
        model_report(baseline, labels[:-1], kinds)
