"""Save / load of a composed TrinityX artifact (mixed into `TrinityXModel`).

Layout: folder/manifest.json, experts/<name>/ (the PEFT adapters, re-saved verbatim),
router.safetensors (token routers per layer, or the SequenceRouter), calibration.json.
Save -> load is bit-exact, and loading refuses a backbone whose weights hash differs from the
one the artifact was built on (the experts' deltas are only meaningful on that backbone).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from trinityx.config import BackboneConfig
from trinityx.model.artifacts import (
    ArtifactError,
    atomic_dir,
    read_manifest,
    write_json,
    write_manifest,
)
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.model.inject import (
    KEY_PREFIX,
    ExpertWeights,
    load_peft_adapter,
    write_peft_adapter,
)
from trinityx.model.presets import PRESETS_FILE, load_presets
from trinityx.nn.mocae import MoCaELinear


class FusedAdapterTensors(Mapping):
    """An adapter's verbatim tensors (key -> tensor), read back from the fused MoCaE buffers.

    Values are tensors, or zero-argument functions recomputing one from the layer's *current*
    buffers (attach_router replaces lora_A_cat; its first R rows are copied unchanged).
    """

    def __init__(self, items: dict[str, Tensor | Callable[[], Tensor]]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Tensor:
        v = self._items[key]
        return v if isinstance(v, Tensor) else v()

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def share_adapter_storage(
    experts: dict[str, ExpertWeights], layers: dict[str, MoCaELinear]
) -> dict[str, ExpertWeights]:
    """Hold every adapter once: new ExpertWeights whose tensors read the fused buffers.

    After injection each A_k / s_k B_k also lives in lora_A_cat / lora_B_cat, so keeping the
    verbatim tensors doubles the adapters' memory. A key is shared only when the read-back is
    bit-exact (same dtype; B = (s B) / s checked, exact e.g. for power-of-two scales), else the
    original tensor is kept; save -> load stays bit-exact either way. Shared modules keep their
    shapes (meta tensors) for `summary`; read factors with `layer.expert_factors(name)`. The
    caller's ExpertWeights objects are not modified.
    """
    out = {}
    for name, ew in experts.items():
        items: dict[str, Tensor | Callable[[], Tensor]] = dict(ew.tensors)
        modules = dict(ew.modules)
        for mod, lo in ew.modules.items():
            layer, ka, kb = (
                layers[mod],
                f"{KEY_PREFIX}{mod}.lora_A.weight",
                f"{KEY_PREFIX}{mod}.lora_B.weight",
            )
            if ka not in items or kb not in items or lo.scale == 0:
                continue
            sp = layer.expert_span(name)
            a, b = layer.lora_A_cat[sp], layer.lora_B_cat[:, sp] / lo.scale
            orig_a, orig_b = ew.tensors[ka], ew.tensors[kb]
            if not (
                a.dtype == orig_a.dtype
                and b.dtype == orig_b.dtype
                and torch.equal(a, orig_a)
                and torch.equal(b, orig_b)
            ):
                continue
            items[ka] = lambda la=layer, sp=sp: la.lora_A_cat[sp]
            items[kb] = lambda la=layer, sp=sp, s=lo.scale: la.lora_B_cat[:, sp] / s
            meta = dataclasses.replace(lo, lora_A=lo.lora_A.to("meta"), lora_B=lo.lora_B.to("meta"))
            modules[mod] = meta
        out[name] = dataclasses.replace(ew, tensors=FusedAdapterTensors(items), modules=modules)
    return out


class ComposedIOMixin:
    """save_pretrained / from_pretrained for TrinityXModel."""

    def router_tensors(self) -> dict[str, Tensor]:
        """Copies of the router's parameters, as router.safetensors stores them: public, so an
        evaluation can fingerprint a model by exactly what its artifact saves."""
        if self.routing == "sequence":
            return {k: v.detach().clone() for k, v in self.sequence_router.state_dict().items()}
        out = {}
        for name, layer in self.layers.items():
            w = (
                layer.router_weight
                if layer.router_weight is not None
                else layer.lora_A_cat[layer.total_rank :]
            )
            out[f"{name}.weight"] = w.detach().clone()
            out[f"{name}.bias"] = layer.router_bias.detach().clone()
        return out

    def calibration_state(self) -> dict:
        """What calibration.json holds: the sequence-level T / vector scaling and, for token
        routing, each layer's gate calibration (scale, bias) when it is not the identity."""
        vs = self.vector_scaling
        layers = {
            n: {"scale": s.tolist(), "bias": b.tolist()}
            for n, (s, b) in self.layer_calibration().items()
            if not (bool((s == 1).all()) and bool((b == 0).all()))
        }
        return {
            "temperature": self.temperature,
            "vector_scaling": None if vs is None else {"w": vs[0].tolist(), "b": vs[1].tolist()},
            "layers": layers,
        }

    def _load_calibration(self, path: Path) -> None:
        cal = json.loads(path.read_text())
        self.temperature = float(cal["temperature"])
        if cal.get("vector_scaling"):
            vs = cal["vector_scaling"]
            self.vector_scaling = (torch.tensor(vs["w"]), torch.tensor(vs["b"]))
        layers = cal.get("layers") or {}
        unknown = sorted(set(layers) - set(self.layers))
        if unknown:
            raise ArtifactError(f"{path}: calibration for unknown layers {unknown[:3]}; rebuild it")
        for n, v in layers.items():
            self.layers[n].set_gate_calibration(torch.tensor(v["scale"]), torch.tensor(v["bias"]))

    def save_pretrained(self, folder: str | Path, expert_dtype: torch.dtype | None = None) -> Path:
        """Write the composed artifact atomically (layout in the module docstring).

        `expert_dtype` (e.g. torch.bfloat16) stores the experts' LoRA tensors in that dtype, halving
        a shipped model; loading casts them to the backbone's dtype, as for any PEFT adapter."""
        with atomic_dir(folder) as tmp:
            for name, ew in self.experts.items():
                tensors = ew.tensors
                if expert_dtype is not None:
                    tensors = {k: v.to(expert_dtype) for k, v in tensors.items()}
                write_peft_adapter(tmp / "experts" / name, ew.config, tensors)
            if self.routing != "none":
                save_file(
                    {k: v.contiguous().cpu() for k, v in self.router_tensors().items()},
                    str(tmp / "router.safetensors"),
                    metadata={"format": "pt"},
                )
            write_json(tmp / "calibration.json", self.calibration_state())
            write_manifest(
                tmp,
                "composed",
                backbone=self.backbone.name,
                backbone_source=self.backbone.source,
                backbone_weights_hash=self.backbone.weights_hash,
                chat_template=self.backbone.chat_template,
                experts=[ew.summary() for ew in self.experts.values()],
                routing=self.routing,
                pool_layer=self.pool_layer,
                router_hidden=self.router_hidden,
                temperature=self.temperature,
                top_k=self.top_k,
                prior=self.prior.tolist(),
                metadata=self.metadata,
            )
            if self.presets:
                write_json(tmp / PRESETS_FILE, {n: p.to_dict() for n, p in self.presets.items()})
        return Path(folder)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        backbone_cfg: BackboneConfig | None = None,
        *,
        backbone: Backbone | None = None,
    ):
        """Load a composed artifact: folder/manifest.json, experts/<name>/ (PEFT adapters),
        router.safetensors, calibration.json. The backbone (from the manifest, `backbone_cfg` or
        an already loaded, un-injected `backbone`) must have the recorded weights hash."""
        folder = Path(folder)
        man = read_manifest(folder, "composed")
        if backbone is None:
            backbone = load_backbone(backbone_cfg or BackboneConfig(name=man["backbone"]))
        if backbone.weights_hash != man["backbone_weights_hash"]:
            raise ArtifactError(
                f"{folder} was built for backbone {man['backbone']!r} (from "
                f"{man.get('backbone_source')}, weights sha256 "
                f"{man['backbone_weights_hash'][:12]}) but the loaded backbone "
                f"{backbone.name!r} has {backbone.weights_hash[:12]}; load it with "
                f"backbone.name={man['backbone']!r}"
            )
        experts = {
            e["name"]: load_peft_adapter(folder / "experts" / e["name"], name=e["name"])
            for e in man["experts"]
        }
        self = cls(
            backbone, experts, man["routing"], man["pool_layer"], man.get("router_hidden", 256)
        )
        if self.routing != "none":
            path = folder / "router.safetensors"
            if not path.is_file():
                raise ArtifactError(f"{path} is missing; the artifact is incomplete, rebuild it")
            sd = load_file(str(path), device=str(self.device))
            if self.routing == "sequence":
                self.sequence_router.load_state_dict(sd)
            else:
                missing = [n for n in self.layers if f"{n}.weight" not in sd]
                if missing:
                    raise ArtifactError(f"{path} has no router for {missing[:3]}...; rebuild it")
                for n, layer in self.layers.items():
                    layer.attach_router(sd[f"{n}.weight"], sd[f"{n}.bias"])
        cal_path = folder / "calibration.json"
        if not cal_path.is_file():
            raise ArtifactError(f"{cal_path} is missing; the artifact is incomplete, rebuild it")
        self._load_calibration(cal_path)
        self.top_k = man.get("top_k")
        self.prior = torch.tensor(man["prior"])
        self.metadata = dict(man.get("metadata") or {})
        self.presets = load_presets(folder)
        return self
