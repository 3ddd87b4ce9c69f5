"""Router training on a composed model (experts frozen, only routers learn).

Loss (paper, Sec. 3): cross-entropy of the sequence-level routing distribution against
which-dimension labels (soft for mixed prompts) + entropy_weight * H(p) + kl_weight *
KL(mean p || gamma), gamma the task-vector prior. Checkpoints after every epoch carry the
router, AdamW's state and the RNG states, so a resumed run ends where an uninterrupted one
would. Post-hoc calibration lives in router_calibration.py.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from trinityx.config import RouterTraining
from trinityx.data.formatting import collate, encode_sft
from trinityx.data.records import RoutingExample, SFTExample
from trinityx.model.composed import TrinityXModel
from trinityx.model.lm_head import check_head, labelled_nll
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
    desc: str | None = None,
):
    """(indices, input_ids, attention_mask) per batch; with `desc`, a progress bar."""
    idx = list(order) if order is not None else list(range(len(examples)))
    starts = range(0, len(idx), batch_size)
    for i in tqdm(starts, desc=desc, leave=False) if desc else starts:
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
    for _, ids, mask in _batches(model, examples, batch_size, max_length, desc="router logits"):
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
    out = model.teacher_forced(
        enc["input_ids"],
        enc["attention_mask"],
        gates=gates,
        logits_to_keep=1,
        output_hidden_states=True,
    )
    hidden = out.hidden_states[-1]  # (B, T, d): the LM head runs in budgeted chunks instead
    check_head(model.model, hidden, out.logits[:, -1])
    nll, n = labelled_nll(model.model, hidden, enc["labels"], model.backbone.logits_budget_mb)
    return nll / max(n, 1)


def save_checkpoint(
    path: Path,
    params: Sequence[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    history: Sequence[dict] = (),
) -> None:
    """Router parameters, optimizer state, RNG states and the loss history so far in one
    safetensors file (written atomically)."""
    tensors = {f"p{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    sd = opt.state_dict()
    scalars: dict[str, dict] = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{i}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(i), {})[k] = v
    tensors["rng.data"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "param_groups": json.dumps(sd["param_groups"]),
        "scalars": json.dumps(scalars),
        "history": json.dumps(list(history)),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(
    path: Path,
    params: Sequence[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> list[dict]:
    """Inverse of `save_checkpoint`: sets parameters, AdamW moments and step, RNG states;
    returns the history up to the checkpoint."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    state = load_file(str(path))
    if "param_groups" not in meta or "rng.data" not in state:
        raise ValueError(
            f"{path} is a router checkpoint without optimizer/RNG state (an older "
            "format); delete the .partial folder or compose with restart=true"
        )
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(state[f"p{i}"])
    opt_state: dict[int, dict] = {}
    for k, v in state.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = v
    for i, extra in json.loads(meta["scalars"]).items():
        opt_state.setdefault(int(i), {}).update(extra)
    opt.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    gen.set_state(state["rng.data"])
    torch.set_rng_state(state["rng.torch"])
    return json.loads(meta.get("history", "[]"))


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
    """Train the routers; returns per-step logs (losses, batch accuracy, batch size). Resumes from `checkpoint_dir` (one file per
    finished epoch, with optimizer and RNG state) so an interrupted compose restarts after its
    last finished epoch and ends as an uninterrupted run would.

    With `cfg.lm_weight > 0` and `lm_examples`, each step adds lm_weight x the response NLL of a
    batch of SFT examples through the composed model (drawn with the seeded data generator)."""
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
            history = load_checkpoint(done[-1], params, opt, gen)
            start = int(done[-1].stem.removeprefix("router_epoch"))
            log.info("resuming router training after epoch %d", start)
    feats = None
    if model.routing == "sequence":  # backbone frozen + experts off: features are fixed
        feats = torch.cat(
            [
                model.pooled_features(ids, mask)
                for _, ids, mask in _batches(
                    model, examples, cfg.batch_size, cfg.max_length, desc="router features (once)"
                )
            ]
        )
    model.model.train(False)
    for epoch in range(start, cfg.epochs):
        order = torch.randperm(len(examples), generator=gen).tolist()
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
            hits = (logits.detach().argmax(-1).cpu() == targets[chunk].argmax(-1)).float()
            history.append(
                {"epoch": epoch + 1, **parts, "accuracy": float(hits.mean()), "n": len(chunk)}
            )
            bar.set_postfix(loss=f"{parts['total']:.3f}")
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(
                checkpoint_dir / f"router_epoch{epoch + 1:03d}.safetensors",
                params,
                opt,
                gen,
                history,
            )
    model.freeze_routers()
    return history
