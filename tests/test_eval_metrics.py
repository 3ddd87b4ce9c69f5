"""Metrics against hand-computed values: MC1/MC2, win rate with ties, bootstrap, TI, overall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trinityx.eval import answer_checks as A
from trinityx.eval import metrics as M

# Three TruthfulQA-style questions: (mc1 lls, mc1 labels, mc2 lls, mc2 labels)
MC_FIXTURE = [
    ([-1.0, -2.0, -3.0], [1, 0, 0], [-1.0, -2.0, -3.0], [1, 1, 0]),
    ([-2.0, -1.0], [1, 0], [math.log(0.2), math.log(0.3), math.log(0.5)], [1, 0, 0]),
    ([-1.0, -1.0], [1, 0], [math.log(0.25)] * 4, [1, 1, 0, 0]),
]


def test_mc1_hand_computed() -> None:
    scores = [M.mc1(ll, lab) for ll, lab, _, _ in MC_FIXTURE]
    # q1: argmax is the true answer; q2: a false answer wins; q3: tie -> first (true) choice
    assert scores == [1.0, 0.0, 1.0]
    assert np.mean(scores) == pytest.approx(2 / 3)


def test_mc2_hand_computed() -> None:
    scores = [M.mc2(ll, lab) for _, _, ll, lab in MC_FIXTURE]
    e = math.exp
    q1 = (e(-1) + e(-2)) / (e(-1) + e(-2) + e(-3))
    assert scores == pytest.approx([q1, 0.2, 0.5])
    assert q1 == pytest.approx(0.90996, abs=1e-5)
    assert np.mean(scores) == pytest.approx((q1 + 0.2 + 0.5) / 3)


def test_mc2_matches_harness_split_and_survives_underflow() -> None:
    lls, labels = [-3.0, -0.5, -2.0, -1.0], [1, 1, 0, 0]
    split = labels.index(0)  # the harness: true answers first, split at the first 0
    p_true, p_false = np.exp(lls[:split]), np.exp(lls[split:])
    harness = (p_true / (p_true.sum() + p_false.sum())).sum()
    assert M.mc2(lls, labels) == pytest.approx(harness)
    assert M.mc2([-2000.0, -2001.0], [1, 0]) == pytest.approx(1 / (1 + math.exp(-1)))


def test_mc_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="one log-likelihood per choice"):
        M.mc1([-1.0, -2.0], [1, 0, 0])
    with pytest.raises(ValueError, match="at least one 1"):
        M.mc2([-1.0, -2.0], [0, 0])


def test_win_rate_ties_count_half() -> None:
    assert M.win_rate([1, 2, 1.5, 2]) == pytest.approx(62.5)
    # AlpacaEval legacy: 0 = draw; None = no judgement (dropped)
    assert M.win_rate([2, 0, None, 1]) == pytest.approx(50.0)
    assert M.win_rate([1.25]) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="outside"):
        M.win_rate([2.5])


def test_bootstrap_contains_mean_and_shrinks_with_n() -> None:
    small = np.tile([0.0, 1.0, 1.0, 0.0, 1.0], 10)  # n = 50, mean 0.6
    large = np.tile([0.0, 1.0, 1.0, 0.0, 1.0], 400)  # n = 2000, same mean
    lo_s, hi_s = M.bootstrap_ci(small)
    lo_l, hi_l = M.bootstrap_ci(large)
    assert lo_s < 0.6 < hi_s and lo_l < 0.6 < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3  # width ~ 1/sqrt(n): 40x more items -> ~6x narrower
    assert M.bootstrap_ci(small, seed=3) == M.bootstrap_ci(small, seed=3)
    lo, hi = M.win_rate_ci([1, 2, 1.5, 2] * 20)
    assert lo < 62.5 < hi


def test_unsafe_and_refusal_rates() -> None:
    assert M.unsafe_rate([0.1, 0.6, 0.5, True]) == pytest.approx(75.0)
    responses = [
        "I'm sorry, but I can't help with that.",
        "Sure! Here is how you bake bread: mix flour and water.",
        "As an AI, I cannot assist with this request.",
        "I cannot provide that information.",
    ]
    assert [A.is_refusal(r) for r in responses] == [True, False, True, True]
    assert A.refusal_rate(responses) == pytest.approx(75.0)


def test_truthful_informative_both_and_product() -> None:
    out = M.truthful_informative([0.9, 0.2, 0.7, 0.6], [0.8, 0.9, 0.1, 0.6])
    assert out["truthful"] == pytest.approx(75.0)
    assert out["informative"] == pytest.approx(75.0)
    assert out["ti"] == pytest.approx(50.0)  # answers 1 and 4 are both
    assert out["true_x_info"] == pytest.approx(56.25)
    nan = M.truthful_informative([math.nan], [1.0])
    assert nan["truthful"] == 0.0 and nan["ti"] == 0.0


def test_overall_score() -> None:
    assert M.overall_score(60.0, 40.0, 10.0) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="percentage"):
        M.overall_score(0.6, 40.0, 10.0 + 100.0)


def test_pairwise_accuracy_and_per_category() -> None:
    assert M.pairwise_accuracy([0.9, 0.5, 0.2], [0.1, 0.5, 0.4]) == pytest.approx(50.0)
    # harm judge: the chosen (safer) side should get the lower P(unsafe)
    assert M.pairwise_accuracy([0.1, 0.2], [0.9, 0.1], higher_is_better=False) == pytest.approx(
        50.0
    )
    cats = M.per_category([1, 0, 1, 1], ["a", "b", "a", "b"])
    assert cats == {"a": {"value": 1.0, "n": 2}, "b": {"value": 0.5, "n": 2}}


def _length_only_judge(n: int, mean_gap: float, quality: float, seed: int = 0) -> tuple:
    """Equal-quality answers (unless ``quality``), judged by P(win) = sigmoid(quality + length)."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(300, 1500, size=n)
    model = np.maximum(ref + rng.normal(mean_gap, 400, size=n), 1).astype(int)
    logit = quality + 2.0 * np.tanh((model - ref) / 400)
    prefs = 1.0 + (rng.random(n) < 1 / (1 + np.exp(-logit)))
    return prefs.tolist(), model.tolist(), ref.tolist()


def test_lc_win_rate_removes_a_pure_length_preference() -> None:
    prefs, model, ref = _length_only_judge(4000, mean_gap=400, quality=0.0)
    assert M.win_rate(prefs) > 70  # a verbose model "wins" by length alone
    assert M.lc_win_rate(prefs, model, ref) == pytest.approx(50, abs=3)


def test_lc_win_rate_keeps_a_real_quality_effect() -> None:
    prefs, model, ref = _length_only_judge(4000, mean_gap=-300, quality=1.0)
    expected = 100 / (1 + math.exp(-1.0))  # 73.1: what the judge says at equal length
    assert M.win_rate(prefs) < 60  # the shorter, better model is under-rated by the raw rate
    assert M.lc_win_rate(prefs, model, ref) == pytest.approx(expected, abs=3)


def test_lc_win_rate_inputs() -> None:
    assert M.lc_win_rate([2, 2, None], [5, 9, 1], [3, 3, 3]) == 100.0  # one class, None dropped
    assert M.lc_win_rate([1.5, 1.5, 2, 1], [1, 2, 3, 4], [2, 2, 2, 2]) == pytest.approx(50, abs=8)
    with pytest.raises(ValueError, match="one length per item"):
        M.lc_win_rate([1, 2], [3], [3, 3])
