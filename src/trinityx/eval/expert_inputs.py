"""What every expert-based baseline needs before it builds: the experts' adapters, their hashes
and the one backbone they were trained on (checked against each expert's manifest).

Shared by the single-model builders (`baselines`) and the model-combining ones
(`baselines_moe`), so neither imports the other's private helpers.
"""

from __future__ import annotations

from pathlib import Path

from trinityx.config import BackboneConfig
from trinityx.eval.config import EvalConfig
from trinityx.eval.model_api import fingerprint_of
from trinityx.model.artifacts import ArtifactError, sha256_file
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.model.inject import ADAPTER_CONFIG, ADAPTER_WEIGHTS, resolve_adapter_dir


class BaselineUnavailable(RuntimeError):
    """The baseline's implementation is not in this installation; the message says which module."""


def adapter_hash(folder: str | Path) -> tuple[Path, dict | None, str]:
    """(PEFT folder, expert manifest or None, sha256 over its config + weights files)."""
    adapter, manifest = resolve_adapter_dir(folder)
    h = fingerprint_of(
        config=sha256_file(adapter / ADAPTER_CONFIG), weights=sha256_file(adapter / ADAPTER_WEIGHTS)
    )
    return adapter, manifest, h


def check_backbone(bb: Backbone, manifest: dict | None, what: str) -> None:
    want = (manifest or {}).get("backbone_weights_hash")
    if want and want != bb.weights_hash:
        raise ArtifactError(
            f"{what} was trained on backbone {manifest.get('backbone')!r} (weights sha256 "
            f"{want[:12]}), but the loaded {bb.name!r} has {bb.weights_hash[:12]}; remove the "
            "`backbone` override or set it to the expert's backbone"
        )


def backbone_cfg(cfg: EvalConfig, manifests: list[dict | None], what: str) -> BackboneConfig:
    """cfg.backbone, else the one backbone the manifests agree on."""
    if cfg.backbone is not None:
        return cfg.backbone
    names = {m["backbone"] for m in manifests if m and m.get("backbone")}
    if len(names) == 1:
        return BackboneConfig(name=names.pop())
    raise ValueError(
        f"{what}: cannot tell which backbone to load (manifests name {sorted(names) or 'none'}); "
        "set `backbone.name` in the eval config"
    )


def device_kwargs(cfg: EvalConfig) -> dict:
    b = cfg.backbone
    return {} if b is None else {"device": b.device, "dtype": b.dtype, "cache_dir": b.cache_dir}


def load_experts(cfg: EvalConfig, what: str) -> tuple[Backbone, dict[str, str]]:
    """(backbone, adapter hash per expert) for `cfg.experts`, checked against their manifests."""
    info = {n: adapter_hash(d) for n, d in cfg.experts.items()}
    bb = load_backbone(backbone_cfg(cfg, [m for _, m, _ in info.values()], what))
    for n, (_, man, _) in info.items():
        check_backbone(bb, man, f"expert {n!r} ({cfg.experts[n]})")
    return bb, {n: h for n, (_, _, h) in info.items()}
