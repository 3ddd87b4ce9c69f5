"""Stage `compose`: experts -> MoCaE model with a trained, calibrated router -> one artifact folder.

setup (backbone from the experts' manifests, inject experts, task-vector prior) -> train the router
on labelled prompts (resumable per epoch, exactly) -> fit the calibration on held-out prompts ->
report it on other held-out prompts -> save (TrinityXModel artifact + report.json + report.md +
reliability diagram + routing heat map). The three prompt sets are disjoint.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from trinityx.config import BackboneConfig, ComposeConfig, PriorSettings, dump_yaml
from trinityx.data.loading import load_sources
from trinityx.data.routing_sets import (
    SHOWCASE,
    assert_disjoint,
    calibration_sets,
    default_sources,
    load_routing,
    prompt_set_info,
)
from trinityx.eval.calibration_report import write_calibration_report
from trinityx.eval.plots import routing_heatmaps
from trinityx.model.artifacts import ArtifactError, read_manifest, write_json
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.model.inject import load_peft_adapter
from trinityx.model.router_calibration import calibrate_router
from trinityx.model.router_training import collect_logits, targets_for, train_router
from trinityx.nn.prior import task_vector_cosines, task_vector_prior

log = logging.getLogger(__name__)


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
            if n in ref.modules
            else {"reference": _zero_factors(layer)}
            for n, layer in model.layers.items()
        ]
    cos = task_vector_cosines(layers, reference, names=names)
    gamma = task_vector_prior(layers, reference, prior.temperature, names=names)
    return gamma, {
        "kind": "task_vectors",
        "reference": prior.reference,
        "temperature": prior.temperature,
        "cosines": dict(zip(names, cos.tolist(), strict=True)),
    }


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


def _check_partial(work: Path, cfg: ComposeConfig) -> None:
    """An interrupted run resumes only under the same config (else its checkpoints would be
    mixed with another run's); a different one is refused, naming the keys, or discarded."""
    old_cfg = work / "config.yaml"
    if not old_cfg.is_file():
        return
    ignore = {"overwrite", "restart"}
    before = {
        k: v for k, v in (yaml.safe_load(old_cfg.read_text()) or {}).items() if k not in ignore
    }
    now = {k: v for k, v in yaml.safe_load(dump_yaml(cfg)).items() if k not in ignore}
    diff = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if not diff:
        return
    if cfg.restart:
        log.warning("discarding %s (its config differs in %s)", work, diff)
        shutil.rmtree(work)
        return
    raise ValueError(
        f"{work} holds an interrupted compose with a different config (keys "
        f"{diff}); rerun with the same config to resume, or with restart=true "
        "to discard it"
    )


def _accuracy(model: TrinityXModel, examples, cfg: ComposeConfig) -> float:
    """Sequence-level router accuracy of the uncalibrated router (the decision its training loss
    scores: pooled logits); the calibrated decision's accuracy is in the calibration report."""
    z = collect_logits(model, examples, cfg.router.batch_size, cfg.router.max_length)
    return float((z.argmax(-1) == targets_for(model, examples).argmax(-1)).float().mean())


def run(cfg: ComposeConfig, backbone_loader: Callable[..., Backbone] = load_backbone) -> Path:
    """Compose, train the router, calibrate, and write the artifact folder; returns it.

    `backbone_loader(cfg)` replaces `load_backbone` (the demo hands out copies of one load)."""
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    names = list(cfg.experts)
    train_src = cfg.router_data or default_sources(names, "train")
    train_ex = load_routing(cfg, train_src)
    fit_ex, test_ex, sets = calibration_sets(cfg, names, cfg.seed)
    assert_disjoint(router_data=train_ex, calibration_fit=fit_ex, calibration_test=test_ex)
    sets = {"router_train": prompt_set_info(train_ex, train_src), **sets}

    work = out.with_name(out.name + ".partial")
    _check_partial(work, cfg)
    backbone = backbone_loader(_backbone_cfg(cfg))
    model = TrinityXModel.build(backbone, cfg.experts, cfg.routing, cfg.pool_layer, cfg.seed)
    gamma, prior_info = compute_prior(model, cfg.prior)
    model.prior = gamma
    log.info("prior gamma = %s", dict(zip(names, gamma.tolist(), strict=True)))

    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(dump_yaml(cfg))
    acc_untrained = _accuracy(model, test_ex, cfg)
    lm_ex = [r.as_sft() if hasattr(r, "as_sft") else r for r in load_sources(cfg, cfg.lm_data)]
    if cfg.router.lm_weight > 0 and not lm_ex:
        raise ValueError("router.lm_weight > 0 needs lm_data (SFT sources with responses)")
    history = train_router(
        model, train_ex, cfg.router, gamma, cfg.seed, work / "router_ckpt", lm_ex
    )
    last = [h for h in history if h["epoch"] == cfg.router.epochs and "accuracy" in h]
    train_acc = (
        sum(h["accuracy"] * h["n"] for h in last) / max(1, sum(h["n"] for h in last))
        if last
        else None
    )  # running accuracy over the last epoch (no extra pass)
    cal = calibrate_router(
        model, fit_ex, test_ex, cfg.calibration, cfg.router.batch_size, cfg.router.max_length
    )
    model.top_k = cfg.top_k
    model.metadata = {
        "stage": "compose",
        "routing": cfg.routing,
        "top_k": cfg.top_k,
        "prompt_sets": sets,
    }
    model.save_pretrained(out)  # atomic; then the report files beside it
    report = {
        "experts": names,
        "routing": cfg.routing,
        "top_k": cfg.top_k,
        "prompt_sets": sets,
        "prior": prior_info | {"gamma": dict(zip(names, gamma.tolist(), strict=True))},
        "router_training": {
            "n": len(train_ex),
            "train_accuracy_last_epoch": train_acc,
            "final": history[-1] if history else None,
        },
        "test_accuracy_untrained": acc_untrained,
        "calibration": cal,
    }
    write_json(out / "router_history.json", history)
    md = write_calibration_report(
        cal, out, names, f"router calibration ({cfg.routing} routing)", sets
    )
    report["showcase_routing"] = _heatmap(model, out / "routing_heatmap.png")
    write_json(out / "report.json", report)
    (out / "report.md").write_text(
        f"# Composed model: {cfg.routing} routing"
        + (f", top-{cfg.top_k}" if cfg.top_k else "")
        + f"\n\nRouter accuracy (test split): untrained {acc_untrained:.3f}, trained "
        f"{cal['after']['accuracy']:.3f}; training prompts (last epoch) "
        f"{train_acc if train_acc is None else round(train_acc, 3)}.\n\n{md}"
        "\n![routing heat map](routing_heatmap.png)\n"
    )
    (out / "config.yaml").write_text(dump_yaml(cfg))
    shutil.rmtree(work, ignore_errors=True)
    log.info(
        "composed model written to %s (test ECE %.3f -> %.3f, accuracy %.3f)",
        out,
        cal["before"]["ece"],
        cal["after"]["ece"],
        cal["after"]["accuracy"],
    )
    return out
