"""Model specs -> `EvalModel`s: TrinityX and every baseline go through the same harness.

`BASELINES` (a plain dict) maps a spec's prefix to a builder taking (argument, EvalConfig):

| spec                          | model                                                          |
|-------------------------------|----------------------------------------------------------------|
| `base`                        | the frozen backbone (config `backbone`, default SmolLM2)      |
| `hf:<dir or hub id>`          | any plain HF causal LM                                         |
| `expert:<dir>`                | one LoRA expert merged into its backbone                       |
| `multitask:<dir>`             | the multi-task LoRA (an expert folder trained on the union)    |
| `merge:<method>`              | static merge of config `experts` (model/baselines/merges.py)   |
| `trinityx:<dir>`              | a composed artifact (token or sequence routing, from manifest) |
| `trinityx-uncalibrated:<dir>` | the same with the router temperature reset to 1               |
| `h3fusion`                    | H3Fusion-style MoE, gates trained on the router prompts        |
| `ensemble`                    | output-level ensemble of the K merged experts                  |
| `xlora`                       | PEFT X-LoRA, untrained classifier (a cost reference only)      |

`merge:`, `h3fusion`, `ensemble` and `xlora` read config `experts`; the last three live in
eval/baselines_moe.py and say "not available yet" if their model/baselines module is missing.

A bare folder is recognised by its manifest.json (kind expert / composed / merged) or, without
one, as a plain HF model folder (config.json). LoRA experts are merged into W0 for evaluation
(exact up to float rounding, and as fast as the base model).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from trinityx.config import BackboneConfig
from trinityx.eval import baselines_moe
from trinityx.eval.config import EvalConfig
from trinityx.eval.expert_inputs import (
    BaselineUnavailable,
    adapter_hash,
    backbone_cfg,
    check_backbone,
    device_kwargs,
    load_experts,
)
from trinityx.eval.model_api import EvalModel, HFEvalModel, fingerprint_of
from trinityx.eval.trinityx_model import TrinityXEvalModel
from trinityx.model.artifacts import MANIFEST, ArtifactError, read_manifest
from trinityx.model.backbone import load_backbone
from trinityx.model.inject import ADAPTER_CONFIG

__all__ = ["BASELINES", "BaselineUnavailable", "build_eval_model", "detect_folder", "parse_spec"]


# ------------------------------------------------------------------ builders
def build_base(arg: str | None, cfg: EvalConfig) -> EvalModel:
    bb = load_backbone(cfg.backbone or BackboneConfig())
    return HFEvalModel(
        bb.model,
        bb.tokenizer,
        cfg.name or "base",
        fingerprint_of(kind="hf", backbone=bb.weights_hash),
    )


def build_hf(arg: str | None, cfg: EvalConfig) -> EvalModel:
    if not arg:
        raise ValueError("spec `hf:` needs a folder or hub id, e.g. hf:runs/merged/helpful")
    bb = load_backbone(BackboneConfig(name=arg, **device_kwargs(cfg)))
    return HFEvalModel(
        bb.model,
        bb.tokenizer,
        cfg.name or Path(arg).name,
        fingerprint_of(kind="hf", backbone=bb.weights_hash),
    )


def _build_adapter(arg: str | None, cfg: EvalConfig, kind: str) -> EvalModel:
    from peft import PeftModel

    if not arg:
        raise ValueError(f"spec `{kind}:` needs an expert folder, e.g. {kind}:runs/experts/{kind}")
    adapter, manifest, h = adapter_hash(arg)
    bb = load_backbone(backbone_cfg(cfg, [manifest], f"{kind}:{arg}"))
    check_backbone(bb, manifest, f"{kind}:{arg}")
    merged = PeftModel.from_pretrained(bb.model, str(adapter)).merge_and_unload()
    label = (manifest or {}).get("dimension") or Path(arg).name
    name = cfg.name or ("multitask" if kind == "multitask" else f"expert:{label}")
    return HFEvalModel(
        merged, bb.tokenizer, name, fingerprint_of(kind="lora", backbone=bb.weights_hash, adapter=h)
    )


def build_expert(arg: str | None, cfg: EvalConfig) -> EvalModel:
    return _build_adapter(arg, cfg, "expert")


def build_multitask(arg: str | None, cfg: EvalConfig) -> EvalModel:
    return _build_adapter(arg, cfg, "multitask")


def build_merge(arg: str | None, cfg: EvalConfig) -> EvalModel:
    from trinityx.model.baselines.merges import METHODS, merge_experts

    if arg not in METHODS:
        raise ValueError(f"spec `merge:{arg or ''}`: choose a method from {', '.join(METHODS)}")
    if not cfg.experts:
        raise ValueError("`merge:` needs `experts` (name -> expert folder) in the eval config")
    bb, hashes = load_experts(cfg, f"merge:{arg}")
    model = merge_experts(
        bb.model, cfg.experts, arg, cfg.merge.weights, cfg.merge.density, cfg.seed
    )
    fp = fingerprint_of(
        kind="merge",
        method=arg,
        backbone=bb.weights_hash,
        adapters=hashes,
        weights={n: cfg.merge.weights.get(n, 1.0) for n in cfg.experts},
        density=cfg.merge.density if arg in ("ties", "dare_linear", "dare_ties") else None,
        seed=cfg.seed if arg.startswith("dare") else None,
    )
    return HFEvalModel(model, bb.tokenizer, cfg.name or f"merge:{arg}", fp)


def _load_composed(arg: str | None, cfg: EvalConfig):
    from trinityx.model.composed import TrinityXModel

    if not arg:
        raise ValueError("spec `trinityx:` needs a composed artifact folder (trinityx compose)")
    return TrinityXModel.from_pretrained(arg, cfg.backbone)


def build_trinityx(arg: str | None, cfg: EvalConfig) -> EvalModel:
    m = _load_composed(arg, cfg)
    return TrinityXEvalModel(
        m, cfg.hhh_weights, cfg.weight_mode, name=cfg.name or f"trinityx-{m.routing}"
    )


def build_trinityx_uncalibrated(arg: str | None, cfg: EvalConfig) -> EvalModel:
    """The same router without its post-hoc calibration (T = 1, no vector scaling, identity
    per-layer gate calibration)."""
    m = _load_composed(arg, cfg)
    m.reset_calibration()
    return TrinityXEvalModel(
        m, cfg.hhh_weights, cfg.weight_mode, name=cfg.name or f"trinityx-{m.routing}-uncalibrated"
    )


def _optional(name: str) -> Builder:
    """A builder for model/baselines/<name>.py, or one that says it is not there yet."""

    def builder(arg: str | None, cfg: EvalConfig) -> EvalModel:
        module = f"trinityx.model.baselines.{name}"
        if importlib.util.find_spec(module) is None:
            raise BaselineUnavailable(f"{name}: not available yet ({module} is not installed)")
        return getattr(baselines_moe, f"build_{name}_eval")(arg, cfg)

    return builder


Builder = Callable[[str | None, EvalConfig], EvalModel]
BASELINES: dict[str, Builder] = {
    "base": build_base,
    "hf": build_hf,
    "expert": build_expert,
    "multitask": build_multitask,
    "merge": build_merge,
    "trinityx": build_trinityx,
    "trinityx-uncalibrated": build_trinityx_uncalibrated,
    "h3fusion": _optional("h3fusion"),
    "ensemble": _optional("ensemble"),
    "xlora": _optional("xlora"),
}


def detect_folder(folder: str | Path) -> str:
    """The spec prefix for a bare folder: from manifest.json kind, else a plain HF folder."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        kind = read_manifest(folder).get("kind")
        mapped = {"expert": "expert", "composed": "trinityx", "merged": "hf"}.get(kind)
        if mapped is None:
            raise ArtifactError(
                f"{folder} is a {kind!r} artifact, which cannot be evaluated; "
                "give an expert, composed or merged folder"
            )
        return mapped
    if (folder / "config.json").is_file():
        return "hf"
    if (folder / ADAPTER_CONFIG).is_file():
        return "expert"
    raise ArtifactError(f"{folder}: no manifest.json, config.json or {ADAPTER_CONFIG}; not a model")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'merge:ties' -> ('merge', 'ties'); a folder path -> (detected kind, path)."""
    head, sep, arg = spec.partition(":")
    if head in BASELINES:
        return head, (arg or None) if sep else None
    if Path(spec).expanduser().is_dir():
        return detect_folder(spec), spec
    known = ", ".join(BASELINES)
    raise ValueError(f"model {spec!r} is neither a known spec ({known}) nor an existing folder")


def build_eval_model(cfg: EvalConfig) -> EvalModel:
    """The EvalModel for `cfg.model`."""
    kind, arg = parse_spec(cfg.model)
    model = BASELINES[kind](arg, cfg)
    if cfg.backbone is not None and not kind.startswith("trinityx"):  # TrinityX: its backbone
        model.logits_budget_mb = cfg.backbone.logits_budget_mb
    return model
