import math

import numpy as np
import pytest

from inference.cascade import (
    AUTO_ACTION,
    AUTO_ALLOW,
    HUMAN_REVIEW,
    DecisionBands,
    RouterConfig,
    audit_sample,
    route,
    shannon_entropy,
    simulate_cascade,
    threshold_for_budget,
    violation_probability,
)
from inference.policy import LABELS


def test_entropy_of_uniform_is_ln4_and_of_one_hot_is_zero():
    assert shannon_entropy([0.25, 0.25, 0.25, 0.25]) == pytest.approx(math.log(4))
    assert shannon_entropy([0.0, 1.0, 0.0, 0.0]) == 0.0
    rows = shannon_entropy(np.array([[0.25] * 4, [1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]))
    np.testing.assert_allclose(rows, [math.log(4), 0.0, math.log(2)])


def test_entropy_rejects_negative_probabilities():
    with pytest.raises(ValueError):
        shannon_entropy([1.2, -0.2, 0.0, 0.0])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("budget", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_threshold_for_budget_routes_that_fraction(seed, budget):
    rng = np.random.default_rng(seed)
    entropies = shannon_entropy(rng.dirichlet(np.ones(4) * 0.5, size=1000))
    t = threshold_for_budget(entropies, budget)
    routed = np.mean([route(e, t) for e in entropies])
    assert abs(routed - budget) <= 1 / 1000


def test_threshold_for_budget_with_ties_picks_the_closest_fraction_under_budget():
    # 6 equal values then 4 distinct: a threshold routes 10, 4, 3, 2, 1 or 0 of them.
    entropies = [0.5] * 6 + [0.6, 0.7, 0.8, 0.9]
    t = threshold_for_budget(entropies, 0.5)  # target 5: 4 is closer than 10
    assert t == 0.6
    assert sum(e >= t for e in entropies) == 4
    # All equal: either everything or nothing is routed.
    assert threshold_for_budget([0.3] * 10, 0.6) == 0.3
    assert threshold_for_budget([0.3] * 10, 0.4) == math.inf
    # Exactly half way (target 5 of all-or-nothing 10/0): stay under budget.
    assert threshold_for_budget([0.3] * 10, 0.5) == math.inf


def test_threshold_for_budget_edges():
    assert threshold_for_budget([0.1, 0.2], 0.0) == math.inf
    assert threshold_for_budget([0.1, 0.2], 1.0) == 0.1
    with pytest.raises(ValueError):
        threshold_for_budget([], 0.1)
    with pytest.raises(ValueError):
        threshold_for_budget([0.1], 1.5)
    with pytest.raises(ValueError):
        threshold_for_budget([0.1, float("nan")], 0.5)


def test_router_config_needs_exactly_one_valid_setting():
    for bad in [dict(), dict(threshold=0.5, budget=0.1), dict(budget=1.5), dict(budget=-0.1), dict(threshold=-1.0)]:
        with pytest.raises(ValueError):
            RouterConfig(**bad)
    assert RouterConfig(threshold=0.7).resolve_threshold() == 0.7
    assert RouterConfig(budget=0.5).resolve_threshold([0.1, 0.2, 0.3, 0.4]) == 0.3
    with pytest.raises(ValueError):
        RouterConfig(budget=0.5).resolve_threshold()


def test_route_sends_entropy_at_or_above_threshold():
    assert route(0.5, 0.5) is True
    assert route(0.49, 0.5) is False
    assert route(1.0, math.inf) is False
    with pytest.raises(ValueError):
        route(float("nan"), 0.5)


def test_decision_bands():
    bands = DecisionBands(allow_below=0.2, action_above=0.9)
    assert bands.decide(0.05) == AUTO_ALLOW
    assert bands.decide(0.2) == HUMAN_REVIEW
    assert bands.decide(0.9) == HUMAN_REVIEW
    assert bands.decide(0.95) == AUTO_ACTION
    review_all = DecisionBands(0.0, 1.0)
    assert {review_all.decide(p) for p in (0.0, 0.5, 1.0)} == {HUMAN_REVIEW}
    for allow, action in [(0.8, 0.2), (-0.1, 0.5), (0.1, 1.5), (float("nan"), 0.5)]:
        with pytest.raises(ValueError):
            DecisionBands(allow, action)
    with pytest.raises(ValueError):
        bands.decide(1.5)


def test_violation_probability_is_one_minus_p_ok():
    assert violation_probability([0.7, 0.1, 0.1, 0.1]) == pytest.approx(0.3)
    np.testing.assert_allclose(violation_probability(np.array([[1, 0, 0, 0], [0, 0, 0, 1.0]])), [0.0, 1.0])
    # A policy's own violating labels: "spam" is a label, but it does not violate.
    labels = ("ok", "spam", "scam")
    assert violation_probability([0.5, 0.3, 0.2], labels, violating=("scam",)) == pytest.approx(0.2)
    np.testing.assert_allclose(violation_probability(np.array([[0.5, 0.3, 0.2]]), labels, violating=("spam", "scam")),
                               [0.5])


def test_audit_sample_is_deterministic_and_about_rate():
    keys = [f"video-{i}" for i in range(4000)]
    first = [audit_sample(k, 0.1, "salt-a") for k in keys]
    assert first == [audit_sample(k, 0.1, "salt-a") for k in keys]
    assert 0.08 < np.mean(first) < 0.12
    other_salt = [audit_sample(k, 0.1, "salt-b") for k in keys]
    assert first != other_salt
    assert not any(audit_sample(k, 0.0, "s") for k in keys[:100])
    assert all(audit_sample(k, 1.0, "s") for k in keys[:100])
    with pytest.raises(ValueError):
        audit_sample("v", 1.1, "s")


def _benchmark(n=400, seed=0):
    """A baseline that is unsure exactly where it is wrong, and an MLLM that is always right."""
    rng = np.random.default_rng(seed)
    y = rng.choice(LABELS, size=n, p=[0.7, 0.1, 0.1, 0.1])
    idx = np.array([LABELS.index(label) for label in y])
    base = np.full((n, 4), 0.01)
    base[np.arange(n), idx] = 0.97
    wrong = rng.random(n) < 0.2
    base[wrong] = [0.4, 0.3, 0.2, 0.1]  # uncertain, argmax "ok"
    wrong &= y != "ok"
    mllm = np.full((n, 4), 0.02)
    mllm[np.arange(n), idx] = 0.94
    return base, mllm, y, wrong


def test_simulate_cascade_routers():
    base, mllm, y, wrong = _benchmark()
    budget = 0.25
    results = {r: simulate_cascade(base, mllm, y, budget, router=r, seed=1) for r in ("entropy", "random", "oracle")}
    acc = {r: float(np.mean(res.predictions == y)) for r, res in results.items()}
    baseline_acc = float(np.mean(np.asarray(LABELS)[base.argmax(1)] == y))
    assert results["entropy"].threshold is not None and results["random"].threshold is None
    assert results["random"].routed_fraction == round(budget * len(y)) / len(y)
    assert results["oracle"].routed.sum() == min(wrong.sum(), round(budget * len(y)))
    assert acc["oracle"] == 1.0
    assert acc["entropy"] == 1.0  # uncertain rows are exactly the mistakes here
    assert baseline_acc < acc["random"] < acc["entropy"]
    # Routed rows carry the MLLM's probabilities, the rest the baseline's.
    res = results["random"]
    np.testing.assert_array_equal(res.probs[res.routed], mllm[res.routed])
    np.testing.assert_array_equal(res.probs[~res.routed], base[~res.routed])


def test_simulate_cascade_zero_budget_is_the_baseline_and_validates():
    base, mllm, y, _ = _benchmark(50)
    res = simulate_cascade(base, mllm, y, 0.0)
    assert res.routed_fraction == 0.0
    np.testing.assert_array_equal(res.probs, base)
    with pytest.raises(ValueError):
        simulate_cascade(base, mllm, y, 0.1, router="best")
    with pytest.raises(ValueError):
        simulate_cascade(base, mllm[:10], y, 0.1)
