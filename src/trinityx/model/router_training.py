"""Router training and calibration on a composed model (experts frozen, only routers learn).

Loss (paper, Sec. 3): cross-entropy of the sequence-level routing distribution against
which-dimension labels (soft for mixed prompts) + entropy_weight * H(p) + kl_weight *
KL(mean p || gamma), gamma the task-vector prior. Calibration is post hoc on held-out prompts:
temperature (or vector) scaling fitted by NLL, with ECE/Brier/NLL/accuracy before and after.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from trinityx.config import CalibrationSettings, RouterTraining
from trinityx.data.formatting import IGNORE_INDEX, collate, encode_sft
from trinityx.data.records import RoutingExample, SFTExample
from trinityx.model.composed import TrinityXModel
from trinityx.nn.calibration import (
    apply_temperature,
    apply_vector_scaling,
    calibration_report,
    fit_temperature,
    fit_vector_scaling,
    reliability_bins,
)
from trinityx.nn.router import router_loss

log = logging.getLogger(__name__)


def targets_for(model: TrinityXModel, examples: Sequence[RoutingExample]) -> torch.Tensor:
    """Soft targets (N, K) in the model's expert order; a row with no weight on any expert is an
    error naming its source (e.g. a label for an expert the model does not have)."""
    rows = []
    for ex in examples:
        w = [float(ex.weights.get(n, 0.0)) for n in model.expert_names]
        if sum(w) <= 0:
            raise ValueError(
                f"{ex.source}: routing weights {ex.weights} name none of the experts "
                f"{model.expert_names}; relabel the source (router_data[].label)"
            )
        rows.append([x / sum(w) for x in w])
    return torch.tensor(rows)


def _batches(
    model: TrinityXModel,
    examples: Sequence[RoutingExample],
    batch_size: int,
    max_length: int,
    order: Sequence[int] | None = None,
):
    idx = list(order) if order is not None else list(range(len(examples)))
    for i in range(0, len(idx), batch_size):
        chunk = idx[i : i + batch_size]
        ids, mask = model.encode([list(examples[j].messages) for j in chunk])
        yield chunk, ids[:, -max_length:], mask[:, -max_length:]  # left-padded: keep the end


@torch.no_grad()
def collect_logits(
    model: TrinityXModel,
    examples: Sequence[RoutingExample],
    batch_size: int = 16,
    max_length: int = 128,
) -> torch.Tensor:
    """Uncalibrated sequence-level router logits (N, K) for calibration and evaluation."""
    out = []
    for _, ids, mask in _batches(model, examples, batch_size, max_length):
        out.append(model.route_logits(ids, mask).float().cpu())
    return torch.cat(out)


def lm_loss(model: TrinityXModel, batch: Sequence[SFTExample], max_length: int) -> torch.Tensor:
    """Response-token NLL through the composed model with the routers routing (grads reach them).

    token mode: the per-layer routers route prompt + response; sequence mode: the gates come from
    the prompt alone (as at generation time) and are held over the response.
    """
    enc = collate(
        [encode_sft(model.tokenizer, ex, max_length) for ex in batch], model.tokenizer.pad_token_id
    )
    gates = None
    if model.routing == "sequence":
        ids, mask = model.encode([list(ex.messages) for ex in batch])
        z = model.sequence_logits_from_features(model.pooled_features(ids, mask))  # (B, K)
        gates = torch.softmax(model.calibrate(z).float(), -1)
    logits = model.logits(enc["input_ids"], enc["attention_mask"], gates=gates)  # (B, T, V)
    labels = enc["labels"].to(logits.device)
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def _require_single_process() -> None:
    """Router training is one process: a few thousand router parameters on cached features."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise RuntimeError(
            f"router training runs in a single process, but WORLD_SIZE={world} (accelerate "
            "launch / torchrun). Run `trinityx compose -c CONFIG` as a plain command; only "
            "`trinityx train-expert` is data parallel."
        )


def train_router(
    model: TrinityXModel,
    examples: Sequence[RoutingExample],
    cfg: RouterTraining,
    prior: torch.Tensor,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    lm_examples: Sequence[SFTExample] = (),
) -> list[dict]:
    """Train the routers; returns per-step logs. Resumes from `checkpoint_dir` (one file per
    finished epoch) so an interrupted compose restarts at its last finished epoch.

    With `cfg.lm_weight > 0` and `lm_examples`, each step adds lm_weight x the response NLL of a
    batch of SFT examples through the composed model (cycled through in a seeded order)."""
    _require_single_process()
    targets = targets_for(model, examples)
    params = model.router_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    start = 0
    if checkpoint_dir is not None:
        done = sorted(checkpoint_dir.glob("router_epoch*.safetensors"))
        if done:
            state = load_file(str(done[-1]))
            with torch.no_grad():
                for i, p in enumerate(params):
                    p.copy_(state[f"p{i}"])
            start = int(done[-1].stem.removeprefix("router_epoch"))
            log.info("resuming router training after epoch %d", start)
    feats = None
    if model.routing == "sequence":  # backbone frozen + experts off: features are fixed
        feats = torch.cat(
            [
                model.pooled_features(ids, mask)
                for _, ids, mask in _batches(model, examples, cfg.batch_size, cfg.max_length)
            ]
        )
    model.model.train(False)
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(examples), generator=gen).tolist()
        if epoch < start:
            continue  # keep the data order identical to an uninterrupted run
        bar = tqdm(
            list(_batches(model, examples, cfg.batch_size, cfg.max_length, order)),
            desc=f"router epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
        )
        for chunk, ids, mask in bar:
            if feats is not None:
                logits = model.sequence_logits_from_features(feats[chunk])
            else:
                logits = model.route_logits(ids, mask, train=True)  # (B, K)
            loss, parts = router_loss(
                logits.float(),
                targets[chunk].to(logits.device),
                prior.to(logits.device),
                cfg.entropy_weight,
                cfg.kl_weight,
            )
            if cfg.lm_weight > 0 and lm_examples:
                picks = torch.randint(len(lm_examples), (cfg.batch_size,), generator=gen)
                lm = lm_loss(model, [lm_examples[i] for i in picks.tolist()], cfg.max_length)
                loss = loss + cfg.lm_weight * lm
                parts = {**parts, "lm": float(lm), "total": float(loss)}
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append({"epoch": epoch + 1, **parts})
            bar.set_postfix(loss=f"{parts['total']:.3f}")
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            save_file(
                {f"p{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)},
                str(checkpoint_dir / f"router_epoch{epoch + 1:03d}.safetensors"),
            )
    model.freeze_routers()
    return history


def calibrate(
    model: TrinityXModel, logits: torch.Tensor, targets: torch.Tensor, cfg: CalibrationSettings
) -> dict:
    """Fit the calibration on held-out logits, set it on the model, and report before/after."""
    labels = targets.argmax(-1)  # accuracy/ECE use the top label; NLL/Brier the soft targets
    before = calibration_report(logits, targets, temperature=1.0, n_bins=cfg.n_bins)["before"]
    model.vector_scaling = None
    model.temperature = 1.0
    if cfg.method == "temperature":
        model.temperature = fit_temperature(logits, targets)
        cal = apply_temperature(logits, model.temperature)
    elif cfg.method == "vector":
        w, b = fit_vector_scaling(logits, targets)
        model.vector_scaling = (w, b)
        model.temperature = fit_temperature(logits, targets)  # per-token gates use T only
        cal = apply_vector_scaling(logits, w, b)
    else:
        cal = logits
    after = calibration_report(cal, targets, temperature=1.0, n_bins=cfg.n_bins)["before"]
    p0, p1 = torch.softmax(logits, -1), torch.softmax(cal, -1)
    return {
        "method": cfg.method,
        "temperature": model.temperature,
        "n": len(labels),
        "before": before,
        "after": after,
        "bins_before": _jsonable(reliability_bins(p0, labels, cfg.n_bins)),
        "bins_after": _jsonable(reliability_bins(p1, labels, cfg.n_bins)),
        "confusion": _confusion(p1.argmax(-1), labels, len(model.expert_names)),
    }


def _jsonable(bins: dict[str, torch.Tensor]) -> dict[str, list]:
    """Tensors to lists with NaN (empty bins) as None, so the report stays valid JSON."""
    return {k: [None if x != x else x for x in v.tolist()] for k, v in bins.items()}


def _confusion(pred: torch.Tensor, labels: torch.Tensor, k: int) -> list[list[int]]:
    m = torch.zeros(k, k, dtype=torch.long)
    for t, p in zip(labels.tolist(), pred.tolist(), strict=True):
        m[t, p] += 1
    return m.tolist()  # rows = true dimension, cols = routed dimension
