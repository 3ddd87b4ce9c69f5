"""Post-hoc calibration of router logits (temperature / vector scaling) and calibration metrics.

The router's softmax gates are only meaningful mixing weights if they are calibrated, so after
training we fit p = softmax(z / T) (temperature scaling, Guo et al. 2017) or
p = softmax(w (.) z + b) (vector scaling) on held-out routing labels by minimising NLL.
Metrics here all take *probabilities* (N, K) and labels that are either int classes (N,) or
soft targets (N, K); ECE/accuracy/reliability use argmax of soft targets. Pure torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-12
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Fitted temperatures stay inside these bounds: separable labels would otherwise drive T -> 0."""

log = logging.getLogger(__name__)


def _soft(labels: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """Labels as (N, K) target distributions."""
    if labels.dim() == 1:
        return F.one_hot(labels.long(), k).to(dtype)
    return labels.to(dtype)


def _hard(labels: Tensor) -> Tensor:
    return labels.argmax(-1) if labels.dim() == 2 else labels.long()


def _nll_logits(logits: Tensor, targets: Tensor) -> Tensor:
    y = _soft(targets, logits.shape[-1], logits.dtype)  # (N, K)
    return -(y * F.log_softmax(logits, -1)).sum(-1).mean()


def _lbfgs(params: list[Tensor], loss_fn: Callable[[], Tensor], max_iter: int) -> None:
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def _bounded(u: Tensor, bounds: tuple[float, float]) -> Tensor:
    """T = exp(log lo + (log hi - log lo) * sigmoid(u)): smooth, strictly inside the bounds."""
    lo, hi = (torch.tensor(b, dtype=u.dtype).log() for b in bounds)
    return (lo + (hi - lo) * torch.sigmoid(u)).exp()


def _unbounded_start(bounds: tuple[float, float], dtype: torch.dtype) -> float:
    """u such that _bounded(u) == 1 (start the fit at the uncalibrated router)."""
    lo, hi = (torch.tensor(b, dtype=dtype).log() for b in bounds)
    frac = (0 - lo) / (hi - lo)
    return float(torch.logit(frac.clamp(1e-6, 1 - 1e-6)))


def _warn_at_bounds(t: Tensor, bounds: tuple[float, float], what: str) -> None:
    lo, hi = bounds
    at = ((t <= lo * 1.01) | (t >= hi * 0.99)).nonzero().flatten().tolist()
    if at:
        log.warning(
            "%s: temperature at a bound %s for %d of %d fits (e.g. index %s); the "
            "calibration data may be separable or too small",
            what,
            bounds,
            len(at),
            t.numel(),
            at[:5],
        )


def fit_temperature(
    logits: Tensor,
    targets: Tensor,
    max_iter: int = 100,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """T* = argmin_T NLL(softmax(z / T), y) over T in `bounds` (LBFGS on a sigmoid
    reparametrisation of log T), with a warning when T* ends at a bound. logits (N, K)."""
    return float(fit_layer_temperatures(logits[None], targets, max_iter, bounds)[0])


def fit_layer_temperatures(
    logits: Tensor,
    targets: Tensor,
    max_iter: int = 200,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> Tensor:
    """One temperature per layer, T_l = argmin NLL(softmax(z_l / T_l), y), fitted jointly.

    logits (L, N, K): layer l's router logits at N routed positions; targets (N, K) or (N,):
    the label of each position (its prompt's dimension). The per-layer NLLs are independent,
    so one LBFGS over the sum finds every T_l at once. Returns T (L,).
    """
    z = logits.detach().double()  # (L, N, K)
    y = _soft(targets.detach(), z.shape[-1], z.dtype).to(z.device)  # (N, K)
    u = torch.full(
        (z.shape[0],), _unbounded_start(bounds, z.dtype), dtype=torch.float64, requires_grad=True
    )

    def loss() -> Tensor:
        zt = z / _bounded(u, bounds)[:, None, None]
        return -(y * F.log_softmax(zt, -1)).sum(-1).mean(-1).sum()  # sum_l NLL_l

    with torch.enable_grad():
        _lbfgs([u], loss, max_iter)
    temps = _bounded(u.detach(), bounds)
    _warn_at_bounds(temps, bounds, "fit_layer_temperatures")
    return temps.float()


def fit_layer_vector_scaling(
    logits: Tensor, targets: Tensor, max_iter: int = 300
) -> tuple[Tensor, Tensor]:
    """Vector scaling per layer: (w_l, b_l) (L, K) minimising NLL(softmax(w_l (.) z_l + b_l), y).

    logits (L, N, K), targets (N, K) or (N,); starts at the identity, fitted jointly."""
    z = logits.detach().double()
    y = _soft(targets.detach(), z.shape[-1], z.dtype).to(z.device)
    L, _, k = z.shape
    w = torch.ones(L, 1, k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(L, 1, k, dtype=torch.float64, requires_grad=True)

    def loss() -> Tensor:
        return -(y * F.log_softmax(z * w + b, -1)).sum(-1).mean(-1).sum()

    with torch.enable_grad():
        _lbfgs([w, b], loss, max_iter)
    return w.detach().reshape(L, k).float(), b.detach().reshape(L, k).float()


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Calibrated logits z / T (softmax of these are the calibrated gates)."""
    return logits / temperature


def fit_vector_scaling(
    logits: Tensor, targets: Tensor, max_iter: int = 200
) -> tuple[Tensor, Tensor]:
    """(w, b) (K,), (K,) minimising NLL(softmax(w (.) z + b), y); starts at identity w=1, b=0."""
    z = logits.detach().double()
    t = targets.detach().to(z.device)
    k = z.shape[-1]
    w = torch.ones(k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        _lbfgs([w, b], lambda: _nll_logits(z * w + b, t), max_iter)
    return w.detach().to(logits.dtype), b.detach().to(logits.dtype)


def apply_vector_scaling(logits: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return logits * w.to(logits) + b.to(logits)  # (..., K)


# --------------------------------------------------------------------------- metrics
def accuracy(probs: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose argmax prob is the (argmax) label."""
    return (probs.argmax(-1) == _hard(labels)).float().mean().item()


def nll(probs: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood -1/N sum_i sum_k y_ik log p_ik, from probabilities."""
    y = _soft(labels, probs.shape[-1], probs.dtype)
    return -(y * probs.clamp_min(_EPS).log()).sum(-1).mean().item()


def brier(probs: Tensor, labels: Tensor) -> float:
    """Multi-class Brier score 1/N sum_i sum_k (p_ik - y_ik)^2 (0 is perfect, 2 is worst)."""
    y = _soft(labels, probs.shape[-1], probs.dtype)
    return ((probs - y) ** 2).sum(-1).mean().item()


def reliability_bins(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Tensor]:
    """Per-bin top-label confidence, accuracy and count over equal-width bins of (0, 1].

    Bin i holds confidences in (i/n, (i+1)/n] (bin 0 also takes 0). Empty bins report nan
    confidence/accuracy (a plot skips them) and count 0. Also returns the bin `edges`.
    """
    conf, pred = probs.detach().float().max(-1)  # (N,), (N,)
    correct = (pred == _hard(labels).to(pred.device)).float()  # (N,)
    idx = (conf * n_bins).ceil().long().sub(1).clamp(0, n_bins - 1)  # (N,)
    count = torch.zeros(n_bins).index_add_(0, idx.cpu(), torch.ones_like(conf).cpu())
    conf_sum = torch.zeros(n_bins).index_add_(0, idx.cpu(), conf.cpu())
    acc_sum = torch.zeros(n_bins).index_add_(0, idx.cpu(), correct.cpu())
    nz = count.clamp_min(1)
    empty = count == 0
    return {
        "confidence": torch.where(empty, torch.nan, conf_sum / nz),
        "accuracy": torch.where(empty, torch.nan, acc_sum / nz),
        "count": count,
        "edges": torch.linspace(0, 1, n_bins + 1),
    }


def ece(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error sum_b (n_b / N) |acc_b - conf_b| (top-label, equal width)."""
    bins = reliability_bins(probs, labels, n_bins)
    w = bins["count"] / bins["count"].sum().clamp_min(1)
    gap = (bins["accuracy"] - bins["confidence"]).abs().nan_to_num(0.0)
    return (w * gap).sum().item()


def classwise_ece(probs: Tensor, labels: Tensor, n_bins: int = 15) -> list[float]:
    """Per-class ECE (Kull et al. 2019): for each expert k, the equal-width-bin gap between
    p_k and the frequency of label k, over all samples (not only where k is the top choice).
    Returns K values; their mean is the classwise-ECE summary."""
    y = _hard(labels)
    out = []
    for k in range(probs.shape[-1]):
        pk = probs[:, k].detach().float()
        hit = (y == k).float()
        idx = (pk * n_bins).ceil().long().sub(1).clamp(0, n_bins - 1)
        count = torch.zeros(n_bins).index_add_(0, idx.cpu(), torch.ones_like(pk).cpu())
        gap = (torch.zeros(n_bins).index_add_(0, idx.cpu(), (pk - hit).cpu())).abs()
        out.append(float(gap.sum() / count.sum().clamp_min(1)))
    return out


def _metrics(probs: Tensor, labels: Tensor, n_bins: int) -> dict[str, float]:
    return {
        "ece": ece(probs, labels, n_bins),
        "brier": brier(probs, labels),
        "nll": nll(probs, labels),
        "accuracy": accuracy(probs, labels),
    }


def calibration_report(
    logits: Tensor, labels: Tensor, temperature: float | None = None, n_bins: int = 15
) -> dict:
    """{"temperature": T, "before": metrics(softmax(z)), "after": metrics(softmax(z / T))}.

    temperature None fits T on (logits, labels) itself (report on held-out data for honesty).
    """
    z = logits.detach().float()
    if temperature is None:
        temperature = fit_temperature(z, labels)
    return {
        "temperature": float(temperature),
        "before": _metrics(z.softmax(-1), labels, n_bins),
        "after": _metrics(apply_temperature(z, temperature).softmax(-1), labels, n_bins),
    }
