"""Stage `compose`: experts -> MoCaE model with a trained, calibrated router -> one artifact folder.

setup (backbone from the experts' manifests, inject experts, task-vector prior) -> train the router
on labelled prompts (resumable per epoch) -> calibrate on held-out prompts never seen in training
-> save (TrinityXModel artifact + report.json + reliability diagram + routing heat map).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from trinityx.config import (
    BackboneConfig,
    ComposeConfig,
    DataSource,
    PriorSettings,
    RouterSource,
    dump_yaml,
)
from trinityx.data.loading import load_sources
from trinityx.data.records import RoutingExample, prompt_text
from trinityx.eval.plots import reliability_diagram, routing_heatmaps
from trinityx.model.artifacts import ArtifactError, read_manifest, write_json
from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.model.inject import load_peft_adapter
from trinityx.model.router_training import calibrate, collect_logits, targets_for, train_router
from trinityx.nn.prior import task_vector_cosines, task_vector_prior

log = logging.getLogger(__name__)

SHOWCASE = {
    "helpful": "Write a short thank-you note to a colleague who helped me move.",
    "harmless": "How can I get into my neighbour's wifi without them knowing?",
    "honest": "Do goldfish really have a three-second memory?",
}


def default_sources(experts: list[str], split: str) -> list[RouterSource]:
    """The bundled starter prompts: one file per HHH expert plus the soft-labelled mixed set."""
    srcs = [RouterSource(path=f"starter:{n}", label=n, split=split)
            for n in experts if n in SHOWCASE]
    if {"helpful", "harmless", "honest"} <= set(experts):
        srcs.append(RouterSource(path="starter:mixed", split=split))
    if not srcs:
        raise ValueError("experts are not named helpful/harmless/honest: give router_data and "
                         "calibration_data with a label per source")
    return srcs


def load_routing(cfg, sources: list[RouterSource]) -> list[RoutingExample]:
    out: list[RoutingExample] = []
    for s in sources:
        ds = DataSource(path=s.path, format=s.format, split=s.split, limit=s.limit)
        out.extend(load_sources(cfg, [ds], kind="routing", dimension=s.label))
    return out


def _backbone_cfg(cfg: ComposeConfig) -> BackboneConfig:
    if cfg.backbone is not None:
        return cfg.backbone
    names = set()
    for folder in cfg.experts.values():
        try:
            names.add(read_manifest(folder, "expert")["backbone"])
        except ArtifactError:
            continue  # a bare PEFT adapter: no manifest to read
    if len(names) != 1:
        raise ValueError(
            f"cannot infer the backbone from the experts' manifests (found {sorted(names)}); "
            "set backbone.name in the compose config"
        )
    return BackboneConfig(name=names.pop())


def compute_prior(model: TrinityXModel, prior: PriorSettings) -> tuple[torch.Tensor, dict]:
    """gamma from task-vector geometry (paper): softmax(cos(tau_k, tau_ref) / temperature)."""
    layers = [layer.all_expert_factors() for layer in model.layers.values()]
    names = model.expert_names
    if prior.kind == "uniform":
        return task_vector_prior(layers, None, names=names), {"kind": "uniform"}
    reference: object = "mean"
    if prior.reference != "mean":
        ref = load_peft_adapter(prior.reference, name="reference")
        reference = [
            {"reference": (ref.modules[n].lora_A, ref.modules[n].lora_B, ref.modules[n].scale)}
            if n in ref.modules else {"reference": _zero_factors(layer)}
            for n, layer in model.layers.items()
        ]
    cos = task_vector_cosines(layers, reference, names=names)
    gamma = task_vector_prior(layers, reference, prior.temperature, names=names)
    return gamma, {"kind": "task_vectors", "reference": prior.reference,
                   "temperature": prior.temperature, "cosines": dict(zip(names, cos.tolist(), strict=True))}


def _zero_factors(layer) -> tuple[torch.Tensor, torch.Tensor, float]:
    w = layer.base_layer.weight
    return w.new_zeros(0, w.shape[1]), w.new_zeros(w.shape[0], 0), 0.0


def _heatmap(model: TrinityXModel, path: Path) -> dict:
    traces, summary = [], {}
    for dim, prompt in SHOWCASE.items():
        t = model.routing_trace(prompt)
        if t.dim() == 3:  # (L, T, K) -> per-layer mean over tokens (L, K)
            grid = t.float().mean(1)
        else:
            grid = t.float().reshape(1, -1)
        traces.append((f"[{dim}] {prompt}", grid.tolist()))
        summary[prompt] = dict(zip(model.expert_names, grid.mean(0).tolist(), strict=True))
    routing_heatmaps(traces, model.expert_names, path)
    return summary


def run(cfg: ComposeConfig) -> Path:
    """Compose, train the router, calibrate, and write the artifact folder; returns it."""
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(f"{out} already exists; set overwrite=true or choose another output_dir")
    names = list(cfg.experts)
    train_ex = load_routing(cfg, cfg.router_data or default_sources(names, "train"))
    held_ex = load_routing(cfg, cfg.calibration_data or default_sources(names, "heldout"))
    overlap = {prompt_text(e.messages) for e in train_ex} & {prompt_text(e.messages) for e in held_ex}
    if overlap:
        raise ValueError(f"{len(overlap)} calibration prompts also appear in router_data: "
                         "calibration must use held-out prompts")

    backbone = load_backbone(_backbone_cfg(cfg))
    model = TrinityXModel.build(backbone, cfg.experts, cfg.routing, cfg.pool_layer, cfg.seed)
    gamma, prior_info = compute_prior(model, cfg.prior)
    model.prior = gamma
    log.info("prior gamma = %s", dict(zip(names, gamma.tolist(), strict=True)))

    work = out.with_name(out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(dump_yaml(cfg))
    held_targets = targets_for(model, held_ex)
    mb = cfg.router.max_length
    acc_untrained = float((collect_logits(model, held_ex, 16, mb).argmax(-1)
                           == held_targets.argmax(-1)).float().mean())
    lm_ex = [r.as_sft() if hasattr(r, "as_sft") else r for r in load_sources(cfg, cfg.lm_data)]
    if cfg.router.lm_weight > 0 and not lm_ex:
        raise ValueError("router.lm_weight > 0 needs lm_data (SFT sources with responses)")
    history = train_router(model, train_ex, cfg.router, gamma, cfg.seed, work / "router_ckpt",
                           lm_ex)
    held_logits = collect_logits(model, held_ex, cfg.router.batch_size, mb)
    cal = calibrate(model, held_logits, held_targets, cfg.calibration)
    train_logits = collect_logits(model, train_ex, cfg.router.batch_size, mb)
    train_acc = float((train_logits.argmax(-1) == targets_for(model, train_ex).argmax(-1))
                      .float().mean())
    model.metadata = {"stage": "compose", "routing": cfg.routing, "n_router_train": len(train_ex),
                      "n_calibration": len(held_ex)}
    model.save_pretrained(out)  # atomic; then the report files beside it
    report = {
        "experts": names,
        "routing": cfg.routing,
        "prior": prior_info | {"gamma": dict(zip(names, gamma.tolist(), strict=True))},
        "router_training": {"n": len(train_ex), "train_accuracy": train_acc,
                            "final": history[-1] if history else None},
        "heldout_accuracy_untrained": acc_untrained,
        "calibration": cal,
    }
    write_json(out / "router_history.json", history)
    reliability_diagram(cal, out / "reliability.png", f"router calibration ({cfg.routing} routing)")
    report["showcase_routing"] = _heatmap(model, out / "routing_heatmap.png")
    write_json(out / "report.json", report)
    (out / "config.yaml").write_text(dump_yaml(cfg))
    shutil.rmtree(work, ignore_errors=True)
    log.info("composed model written to %s\n%s", out, json.dumps(
        {k: cal[k] for k in ("temperature", "before", "after")}, indent=1))
    return out
