"""Post-hoc router calibration, fitted on one prompt set and reported on another.

The C in MoCaE: the router's probabilities are only meaningful mixing weights if they are
calibrated, and a calibration is only shown to hold if it is measured on prompts it was not
fitted on. So every compose uses three disjoint prompt sets (router-train, calibration-fit,
calibration-test; data/routing_sets.py); this module fits on the fit set and reports
before/after on the test set, with 95% bootstrap intervals (prompts resampled).

What is calibrated is what the model uses:
- sequence routing: the SequenceRouter's logits, softmax(z / T) or softmax(w (.) z + b);
- token routing: every MoCaE layer's router separately, z'_l = z_l / T_l (or w_l (.) z_l + b_l),
  fitted by the NLL of that layer's per-token probabilities against the prompt's dimension and
  applied inside the layer where its gates form. Reported per layer, pooled over layers and
  tokens, and for the sequence-level decision (mean of the gates used over layers and tokens),
  each measured by a fresh forward pass with the calibration in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import bootstrap
from torch import Tensor

from trinityx.config import CalibrationSettings
from trinityx.data.records import RoutingExample
from trinityx.model.composed import TrinityXModel
from trinityx.model.generation import pool_records
from trinityx.model.router_training import _batches, collect_logits, targets_for
from trinityx.nn.calibration import (
    brier,
    classwise_ece,
    ece,
    fit_layer_temperatures,
    fit_layer_vector_scaling,
    fit_temperature,
    fit_vector_scaling,
    nll,
    reliability_bins,
)


# --------------------------------------------------------------------------- metrics
def metrics_with_ci(
    probs: Tensor, targets: Tensor, n_bins: int, n_boot: int, seed: int = 0
) -> dict:
    """ECE / Brier / NLL / accuracy of probs (N, K) with 95% percentile bootstrap intervals
    (prompts resampled), class-wise ECE, reliability bins and the confusion matrix."""
    probs, targets = probs.detach().float().cpu(), targets.detach().float().cpu()
    fns = {
        "ece": lambda p, y: ece(p, y, n_bins),
        "brier": brier,
        "nll": nll,
        "accuracy": lambda p, y: float((p.argmax(-1) == y.argmax(-1)).float().mean()),
    }
    out: dict = {}
    idx = np.arange(len(probs))
    for name, fn in fns.items():
        out[name] = fn(probs, targets)
        if n_boot > 0 and len(probs) > 1:
            res = bootstrap(
                (idx,),
                lambda i, fn=fn: fn(probs[i], targets[i]),
                vectorized=False,
                n_resamples=n_boot,
                method="percentile",
                random_state=seed,
            )
            ci = res.confidence_interval
            out[f"{name}_ci"] = [float(ci.low), float(ci.high)]
    out["classwise_ece"] = classwise_ece(probs, targets, n_bins)
    out["mean_confidence"] = float(probs.max(-1).values.mean())
    out["bins"] = _jsonable(reliability_bins(probs, targets, n_bins))
    out["confusion"] = _confusion(probs.argmax(-1), targets.argmax(-1), probs.shape[-1])
    return out


def _jsonable(bins: dict[str, Tensor]) -> dict[str, list]:
    """Tensors to lists with NaN (empty bins) as None, so the report stays valid JSON."""
    return {k: [None if x != x else x for x in v.tolist()] for k, v in bins.items()}


def _confusion(pred: Tensor, labels: Tensor, k: int) -> list[list[int]]:
    m = torch.zeros(k, k, dtype=torch.long)
    for t, p in zip(labels.tolist(), pred.tolist(), strict=True):
        m[t, p] += 1
    return m.tolist()  # rows = true dimension, cols = routed dimension


# --------------------------------------------------------------------------- token records
@torch.no_grad()
def token_logits(
    model: TrinityXModel, examples: Sequence[RoutingExample], batch_size: int, max_length: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-layer router logits at every real prompt token, under the model's current per-layer
    calibration: Z (L, Ntok, K), owner (Ntok,) the prompt index of each token, and the pooled
    sequence-level logits (N, K) (mean over layers and tokens, as `route_logits`)."""
    zs, owners, pooled = [], [], []
    for chunk, ids, mask in _batches(
        model, examples, batch_size, max_length, desc="per-layer router logits"
    ):
        recs = model.token_records(ids, mask)  # L x (B, T, K)
        m = mask.to(recs[0].device)
        sel = m.bool()  # (B, T)
        zs.append(torch.stack([r.float()[sel] for r in recs]).cpu())  # (L, n_tok, K)
        rows = torch.tensor(chunk).unsqueeze(1).expand(sel.shape)  # (B, T)
        owners.append(rows[sel.cpu()])
        pooled.append(pool_records(recs, m).cpu())
    return torch.cat(zs, 1), torch.cat(owners), torch.cat(pooled)


def _pooled_gate_metrics(
    z: Tensor, owner: Tensor, targets: Tensor, n_bins: int, n_boot: int
) -> dict:
    """ECE / accuracy of the per-token gates softmax(z'), per layer and pooled over layers; the
    pooled ECE gets a bootstrap interval that resamples prompts (tokens of a prompt together)."""
    p = torch.softmax(z, -1)  # (L, Ntok, K): the gates the layers form (before user weights)
    y = targets[owner]  # (Ntok, K)
    per_layer = [ece(pl, y, n_bins) for pl in p]
    L = p.shape[0]
    flat_p, flat_y = p.reshape(-1, p.shape[-1]), y.repeat(L, 1)
    out = {
        "ece_per_layer": per_layer,
        "pooled_ece": ece(flat_p, flat_y, n_bins),
        "pooled_accuracy": float((flat_p.argmax(-1) == flat_y.argmax(-1)).float().mean()),
        "pooled_bins": _jsonable(reliability_bins(flat_p, flat_y, n_bins)),
    }
    if n_boot > 0:
        tok_of = [torch.nonzero(owner == i).flatten() for i in range(int(owner.max()) + 1)]

        def stat(i: np.ndarray) -> float:
            t = torch.cat([tok_of[j] for j in i])
            return ece(p[:, t].reshape(-1, p.shape[-1]), y[t].repeat(L, 1), n_bins)

        res = bootstrap(
            (np.arange(len(tok_of)),),
            stat,
            vectorized=False,
            n_resamples=min(n_boot, 200),
            method="percentile",
            random_state=0,
        )
        out["pooled_ece_ci"] = [
            float(res.confidence_interval.low),
            float(res.confidence_interval.high),
        ]
    return out


# --------------------------------------------------------------------------- calibration
def _fit_sequence(model: TrinityXModel, z: Tensor, y: Tensor, method: str) -> dict:
    if method == "temperature":
        model.temperature = fit_temperature(z, y)
    elif method == "vector":
        model.vector_scaling = fit_vector_scaling(z, y)
    return {
        "temperature": model.temperature,
        "vector_scaling": None
        if model.vector_scaling is None
        else [t.tolist() for t in model.vector_scaling],
    }


def _fit_token(
    model: TrinityXModel,
    fit_ex: Sequence[RoutingExample],
    y_fit: Tensor,
    method: str,
    scope: str,
    rounds: int,
    batch_size: int,
    max_length: int,
) -> dict:
    """Gate calibration inside the layers, refitted `rounds` times: a layer's calibration
    changes the hidden states later layers route on, so each round refits on logits recorded
    under the previous round's calibration (composing the scalings) until they settle.

    scope "layers": one temperature (or w_l, b_l) per layer, each by its own per-token NLL;
    "shared": one temperature (or w, b) for all layers, by the NLL of all their gates pooled.
    """
    names = list(model.layers)
    if method == "none":
        return {}
    history = []
    for _ in range(rounds):
        z, owner, _ = token_logits(model, fit_ex, batch_size, max_length)
        y = y_fit[owner]
        old = model.layer_calibration()
        k = z.shape[-1]
        zz = z.reshape(1, -1, k) if scope == "shared" else z  # (1, L*Ntok, K) or (L, Ntok, K)
        yy = y.repeat(len(names), 1) if scope == "shared" else y
        if method == "temperature":
            temps = fit_layer_temperatures(zz, yy)  # (L,) or (1,)
            w, b = (1.0 / temps)[:, None].expand(-1, k), torch.zeros(len(temps), k)
        else:
            w, b = fit_layer_vector_scaling(zz, yy)  # (L, K) or (1, K) each
        w, b = w.expand(len(names), k), b.expand(len(names), k)
        # z'' = (z * s + c) * w + b: compose with the previous round's calibration
        model.set_layer_calibration(
            {
                n: (old[n][0].float().cpu() * w[i], old[n][1].float().cpu() * w[i] + b[i])
                for i, n in enumerate(names)
            }
        )
        history.append(float((w - 1).abs().mean()))
    scales = torch.stack([s.float().mean() for s, _ in model.layer_calibration().values()])
    temps = 1.0 / scales
    q = torch.quantile(temps, torch.tensor([0.0, 0.5, 1.0])).tolist()
    return {
        "layer_temperatures": dict(zip(names, temps.tolist(), strict=True)),
        "temperature_min_median_max": q,
        "rounds": rounds,
        "scope": scope,
        "mean_abs_change_per_round": history,
    }


def calibrate_router(
    model: TrinityXModel,
    fit_ex: Sequence[RoutingExample],
    test_ex: Sequence[RoutingExample],
    cfg: CalibrationSettings,
    batch_size: int = 16,
    max_length: int = 128,
) -> dict:
    """Fit the calibration on `fit_ex`, set it on the model, report before/after on `test_ex`.

    The report's "before"/"after" are the sequence-level decision on the test prompts (for
    token routing also "gates_before"/"gates_after": per layer and pooled per-token gates,
    calibrated per layer, while the decision, the pooled logits of the calibrated layers, gets
    its own temperature) and "top1" the confidence vs accuracy of the chosen expert.
    """
    model.reset_calibration()
    y_fit, y_test = targets_for(model, fit_ex), targets_for(model, test_ex)
    nb, boot = cfg.n_bins, cfg.bootstrap
    report: dict = {
        "method": cfg.method,
        "routing": model.routing,
        "n_fit": len(fit_ex),
        "n_test": len(test_ex),
    }
    if model.routing == "sequence":
        z_fit = collect_logits(model, fit_ex, batch_size, max_length)
        z_test = collect_logits(model, test_ex, batch_size, max_length)
        report["fitted"] = _fit_sequence(model, z_fit, y_fit, cfg.method)
        before = torch.softmax(z_test, -1)
        after = torch.softmax(model.calibrate(z_test), -1)
        report["fit_split"] = {
            "nll_before": nll(torch.softmax(z_fit, -1), y_fit),
            "nll_after": nll(torch.softmax(model.calibrate(z_fit), -1), y_fit),
        }
    else:
        # 1. each layer's gates: one temperature (or w_l, b_l) per layer, per-token NLL
        z_test, own_test, pooled_test = token_logits(model, test_ex, batch_size, max_length)
        report["gates_before"] = _pooled_gate_metrics(z_test, own_test, y_test, nb, boot)
        report["fitted"] = _fit_token(
            model,
            fit_ex,
            y_fit,
            cfg.method,
            cfg.token_scope,
            cfg.layer_rounds,
            batch_size,
            max_length,
        )
        # 2. the sequence-level decision: pooled logits of the calibrated layers, its own T
        _, _, pooled_fit = token_logits(model, fit_ex, batch_size, max_length)
        report["fitted"]["decision"] = _fit_sequence(model, pooled_fit, y_fit, cfg.method)
        z_after, own_after, pooled_after = token_logits(model, test_ex, batch_size, max_length)
        report["gates_after"] = _pooled_gate_metrics(z_after, own_after, y_test, nb, boot)
        before = torch.softmax(pooled_test, -1)
        after = torch.softmax(model.calibrate(pooled_after), -1)
    report["before"] = metrics_with_ci(before, y_test, nb, boot)
    report["after"] = metrics_with_ci(after, y_test, nb, boot)
    conf, pred = after.max(-1)
    report["top1"] = {
        "accuracy": float((pred == y_test.argmax(-1)).float().mean()),
        "mean_confidence": float(conf.mean()),
        "ece": ece(after, y_test, nb),
    }
    return report
