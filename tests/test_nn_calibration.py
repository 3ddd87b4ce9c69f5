"""Post-hoc calibration: temperature recovery, vector scaling, and metric values."""

from __future__ import annotations

import math

import pytest
import torch

from trinityx.nn.calibration import (
    accuracy,
    apply_temperature,
    apply_vector_scaling,
    brier,
    calibration_report,
    ece,
    fit_temperature,
    fit_vector_scaling,
    nll,
    reliability_bins,
)

T_TRUE, N, K = 2.5, 20000, 3


@pytest.fixture(scope="module")
def synthetic():
    """Logits z and labels drawn from softmax(z / T_TRUE): z is overconfident by T_TRUE."""
    g = torch.Generator().manual_seed(0)
    z = 3.0 * torch.randn(N, K, generator=g)
    p_true = torch.softmax(z / T_TRUE, -1)
    y = torch.multinomial(p_true, 1, generator=g).squeeze(1)
    return z, y, p_true


def test_fit_temperature_recovers_known_temperature(synthetic):
    z, y, p_true = synthetic
    t = fit_temperature(z, y)
    assert t == pytest.approx(T_TRUE, rel=0.05)
    assert fit_temperature(z, p_true) == pytest.approx(T_TRUE, rel=0.01)  # soft targets


def test_temperature_fitted_on_one_half_calibrates_the_other(synthetic):
    """The outcome calibration exists for: T fitted on one half makes the other half's
    probabilities honest (NLL and ECE fall) without moving a single decision (accuracy)."""
    z, y, _ = synthetic
    t = fit_temperature(z[: N // 2], y[: N // 2])
    zt, yt = z[N // 2 :], y[N // 2 :]
    cal = apply_temperature(zt, t)
    assert nll(cal.softmax(-1), yt) < nll(zt.softmax(-1), yt) - 0.05
    assert ece(cal.softmax(-1), yt) < 0.5 * ece(zt.softmax(-1), yt)
    assert accuracy(cal.softmax(-1), yt) == accuracy(zt.softmax(-1), yt)


def test_fit_temperature_near_one_when_calibrated(synthetic):
    z, y, _ = synthetic
    assert fit_temperature(z / T_TRUE, y) == pytest.approx(1.0, rel=0.05)


def test_vector_scaling_learns_uniform_shrink(synthetic):
    z, y, _ = synthetic
    w, b = fit_vector_scaling(z, y)
    assert w.shape == (K,) and b.shape == (K,)
    assert torch.allclose(w, torch.full((K,), 1 / T_TRUE), rtol=0.1)
    assert b.abs().max() < 0.1
    vs = nll(apply_vector_scaling(z, w, b).softmax(-1), y)
    assert vs < nll(z.softmax(-1), y) - 0.1


def test_ece_calibrated_vs_overconfident(synthetic):
    z, y, p_true = synthetic
    calibrated = ece(p_true, y)
    overconfident = ece(z.softmax(-1), y)
    assert calibrated < 0.02
    assert overconfident > 0.1 and overconfident > 5 * calibrated


def test_hand_computed_metrics():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 2])
    assert brier(probs, labels) == pytest.approx(((0.09 + 0.04 + 0.01) + (0.04 + 0.25 + 0.49)) / 2)
    assert nll(probs, labels) == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2)
    assert accuracy(probs, labels) == 0.5
    # bins of width 0.1: conf 0.7 (correct) and 0.5 (wrong) -> 0.5 * 0.3 + 0.5 * 0.5
    assert ece(probs, labels, n_bins=10) == pytest.approx(0.4)
    soft = torch.nn.functional.one_hot(labels, 3).float()
    assert brier(probs, soft) == pytest.approx(brier(probs, labels))
    assert nll(probs, soft) == pytest.approx(nll(probs, labels))
    mixed = torch.tensor([[0.5, 0.5, 0.0]])
    assert brier(torch.tensor([[0.5, 0.5, 0.0]]), mixed) == 0.0
    assert nll(mixed, mixed) == pytest.approx(math.log(2))


def test_reliability_bins_layout():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.95, 0.05, 0.0]])
    bins = reliability_bins(probs, torch.tensor([0, 2, 0]), n_bins=10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 1, 0, 1, 0, 0, 1]
    assert bins["edges"].shape == (11,)
    assert bins["confidence"][6].item() == pytest.approx(0.7)
    assert bins["accuracy"][4].item() == 0.0 and bins["accuracy"][9].item() == 1.0
    assert torch.isnan(bins["confidence"][0])


def test_calibration_report_improves_overconfident(synthetic):
    z, y, _ = synthetic
    rep = calibration_report(z, y)
    assert rep["temperature"] == pytest.approx(T_TRUE, rel=0.05)
    before, after = rep["before"], rep["after"]
    assert set(before) == {"ece", "brier", "nll", "accuracy"}
    assert after["ece"] < before["ece"] / 3 and after["nll"] < before["nll"]
    assert after["accuracy"] == pytest.approx(before["accuracy"])  # T never changes argmax
    assert calibration_report(z, y, temperature=1.0)["after"] == pytest.approx(before)


def test_layer_temperatures_recovered_and_each_layer_ece_reduced():
    """A synthetic over-confident token router: layer l's logits are T_l times too sharp."""
    from trinityx.nn.calibration import fit_layer_temperatures, fit_layer_vector_scaling

    g = torch.Generator().manual_seed(1)
    temps = torch.tensor([0.5, 1.0, 2.0, 4.0])  # per layer; 0.5 = under-confident
    n = 8000
    z_true = 2.0 * torch.randn(n, K, generator=g)  # one calibrated "truth" per token
    y = torch.multinomial(torch.softmax(z_true, -1), 1, generator=g).squeeze(1)
    z = torch.stack([z_true * t for t in temps])  # (L, N, K): layer l over-confident by T_l
    fitted = fit_layer_temperatures(z, y)
    assert fitted.shape == (4,)
    torch.testing.assert_close(fitted, temps, rtol=0.10, atol=0)
    for layer, t in enumerate(fitted):
        before = ece(torch.softmax(z[layer], -1), y)
        after = ece(torch.softmax(z[layer] / t, -1), y)
        if abs(float(temps[layer]) - 1.0) > 0.1:
            assert after < before / 2, (layer, before, after)
    w, b = fit_layer_vector_scaling(z, y)
    assert w.shape == b.shape == (4, K)
    torch.testing.assert_close(w.mean(-1), 1 / temps, rtol=0.15, atol=0)


def test_temperature_is_bounded_on_separable_labels(caplog):
    z = 0.2 * torch.eye(3).repeat(20, 1)
    y = torch.arange(3).repeat(20)  # perfectly separable: the NLL keeps falling as T -> 0
    t = fit_temperature(z, y)
    assert 0.05 <= t <= 0.051  # unbounded, T would sink far below 0.05 here
    assert "at a bound" in caplog.text


def test_classwise_ece_is_zero_when_calibrated_per_class():
    from trinityx.nn.calibration import classwise_ece

    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert classwise_ece(p, torch.arange(3)) == [0.0, 0.0, 0.0]
    assert max(classwise_ece(p, torch.tensor([1, 2, 0]))) == pytest.approx(2 / 3)
