"""Read PEFT LoRA adapter folders (safetensors only) and inject MoCaE layers into a HF causal LM.

`load_peft_adapter` turns one adapter folder (or a train-expert artifact holding one in
`adapter/`) into `ExpertWeights`: per backbone module name, the factors A_k (r, d_in), B_k
(d_out, r) and the scale s_k = alpha / r (alpha / sqrt(r) with rsLoRA), honouring PEFT's
`rank_pattern` / `alpha_pattern`. Anything that is not plain LoRA on nn.Linear (DoRA, LoRA
biases, embeddings, modules_to_save, ...) is refused with the folder and the field, because
Eq. MoCaE would silently drop it. `inject_mocae` swaps every targeted nn.Linear for a
`MoCaELinear` holding all experts in one fixed order, so gate index k means the same expert in
every layer. `write_peft_adapter` writes the standard two-file PEFT layout back.

Nothing but the targeted nn.Linear modules is touched, so what a backbone family does around
them stays as it is and stays exact: Gemma 3's q/k RMSNorms act on q_proj/k_proj outputs, the
LoRA delta included, exactly as under PEFT; its (1 + w) norms, the sqrt(d) scale inside the
embedding module and sliding-window attention are never wrapped. Targets tied to the input
embeddings (both families tie the LM head) are refused. tests/test_families.py checks fused =
naive and one-hot = plain PEFT on the tiny Llama and the tiny Gemma 3.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from trinityx.model.artifacts import ArtifactError, read_manifest, write_json
from trinityx.nn.mocae import MoCaELinear, RoutingState
from trinityx.nn.siblings import group_siblings

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
EXPERT_ADAPTER_DIR = "adapter"  # train-expert artifacts keep the PEFT folder here
KEY_PREFIX = "base_model.model."  # PeftModel -> LoraModel -> the HF model
_KEY_RE = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")

# Fields whose non-default value changes the adapter's function beyond s * B A x.
_UNSUPPORTED = {
    "use_dora": (False, "DoRA rescales the merged weight column-wise; retrain with use_dora=false"),
    "bias": ("none", "trained biases are not part of Eq. MoCaE; retrain with bias='none'"),
    "lora_bias": (False, "a bias on lora_B is not supported; retrain with lora_bias=false"),
    "fan_in_fan_out": (False, "Conv1D (GPT-2 style) targets are not nn.Linear"),
    "use_qalora": (False, "QA-LoRA pools inputs; retrain plain LoRA"),
    "modules_to_save": (None, "fully trained modules cannot be gated; drop modules_to_save"),
    "trainable_token_indices": (None, "trainable token embeddings cannot be gated"),
    "target_parameters": (None, "LoRA on raw parameters (e.g. MoE experts) is not supported"),
    "alora_invocation_tokens": (None, "activated LoRA (aLoRA) is not supported"),
    "layer_replication": (None, "layer replication changes the backbone"),
}


@dataclass
class ModuleLoRA:
    """One expert's factors in one module: A (r, d_in), B (d_out, r), scale s = alpha / r."""

    lora_A: Tensor
    lora_B: Tensor
    scale: float
    alpha: float

    @property
    def r(self) -> int:
        return self.lora_A.shape[0]


@dataclass
class ExpertWeights:
    """A LoRA expert read from disk; `tensors`/`config` are kept verbatim for exact re-saving."""

    name: str
    folder: Path  # the PEFT adapter folder read
    config: dict  # adapter_config.json as read
    tensors: dict[str, Tensor]  # adapter_model.safetensors as read (original keys and dtypes)
    modules: dict[str, ModuleLoRA]  # backbone module name -> factors
    manifest: dict | None = field(default=None)  # expert artifact manifest, if there was one

    def summary(self) -> dict:
        """What a composed manifest records about this expert."""
        ranks = sorted({m.r for m in self.modules.values()})
        return {
            "name": self.name,
            "r": self.config.get("r"),
            "lora_alpha": self.config.get("lora_alpha"),
            "use_rslora": bool(self.config.get("use_rslora", False)),
            "target_modules": self.config.get("target_modules"),
            "rank_pattern": self.config.get("rank_pattern") or {},
            "alpha_pattern": self.config.get("alpha_pattern") or {},
            "ranks": ranks,
            "num_modules": len(self.modules),
            "source": str(self.folder),
            "backbone_weights_hash": (self.manifest or {}).get("backbone_weights_hash"),
        }


def _pattern_value(pattern: dict | None, module: str, default: float) -> float:
    """r / alpha of one module as PEFT resolves it: `get_pattern_key` picks the first pattern
    key matching the end of the module name; no match -> the adapter-wide default."""
    from peft.utils.other import get_pattern_key

    pattern = pattern or {}
    return pattern.get(get_pattern_key(list(pattern), module), default)


def resolve_adapter_dir(folder: str | Path) -> tuple[Path, dict | None]:
    """(PEFT adapter folder, expert manifest or None) for an expert artifact or a bare adapter."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ArtifactError(f"expert folder not found: {folder}")
    if (folder / EXPERT_ADAPTER_DIR / ADAPTER_CONFIG).is_file():
        return folder / EXPERT_ADAPTER_DIR, read_manifest(folder, "expert")
    if (folder / ADAPTER_CONFIG).is_file():
        return folder, None
    raise ArtifactError(
        f"{folder} is neither a PEFT adapter folder ({ADAPTER_CONFIG}) nor a train-expert artifact "
        f"({EXPERT_ADAPTER_DIR}/{ADAPTER_CONFIG}); point at the folder `trinityx train-expert` wrote"
    )


def _check_config(cfg: dict, path: Path) -> None:
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ArtifactError(
            f"{path}: peft_type={cfg.get('peft_type')!r}; only LoRA adapters compose"
        )
    for key, (ok, why) in _UNSUPPORTED.items():
        value = cfg.get(key, ok)
        if value != ok and not (ok is None and not value):
            raise ArtifactError(f"{path}: unsupported {key}={value!r}: {why}")
    if not cfg.get("r") or not cfg.get("lora_alpha"):
        raise ArtifactError(f"{path}: missing or zero 'r' / 'lora_alpha'")


def load_peft_adapter(folder: str | Path, name: str | None = None) -> ExpertWeights:
    """Read a PEFT LoRA adapter (safetensors only: no pickle is ever unpickled).

    name defaults to the manifest's dimension (expert artifacts) or the folder name.
    """
    adapter_dir, manifest = resolve_adapter_dir(folder)
    cfg_path, w_path = adapter_dir / ADAPTER_CONFIG, adapter_dir / ADAPTER_WEIGHTS
    if not w_path.is_file():
        found = sorted(p.name for p in adapter_dir.glob("adapter_model.*"))
        raise ArtifactError(
            f"{adapter_dir}: no {ADAPTER_WEIGHTS} (found {found or 'nothing'}). TrinityX reads "
            "safetensors only, never pickled .bin files; re-save the adapter with "
            "`model.save_pretrained(folder, safe_serialization=True)`"
        )
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{cfg_path}: invalid JSON ({e})") from e
    _check_config(cfg, cfg_path)
    tensors = load_file(str(w_path))
    emb = [k for k in tensors if "lora_embedding" in k]
    if emb:
        raise ArtifactError(
            f"{w_path}: embedding LoRA ({emb[0]!r}) cannot be composed; "
            "retrain with target_modules on nn.Linear layers only"
        )
    factors: dict[str, dict[str, Tensor]] = {}
    for key, t in tensors.items():
        m = _KEY_RE.match(key)
        if m is None:
            what = "a DoRA magnitude" if "magnitude" in key else "not a LoRA A/B weight"
            raise ArtifactError(
                f"{w_path}: unsupported tensor {key!r} ({what}); only plain "
                "LoRA on nn.Linear targets can be composed"
            )
        factors.setdefault(m["module"], {})[m["ab"]] = t
    rslora = bool(cfg.get("use_rslora", False))
    modules: dict[str, ModuleLoRA] = {}
    for mod, ab in sorted(factors.items()):
        if set(ab) != {"A", "B"}:
            raise ArtifactError(
                f"{w_path}: module {mod!r} has lora_{'A' if 'B' in ab else 'B'} "
                "missing; the file is damaged, re-save the adapter"
            )
        a, b = ab["A"], ab["B"]  # (r, d_in), (d_out, r)
        r = int(_pattern_value(cfg.get("rank_pattern"), mod, cfg["r"]))
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != r or b.shape[1] != r:
            raise ArtifactError(
                f"{w_path}: {mod}: A {tuple(a.shape)} / B {tuple(b.shape)} do not "
                f"match r={r} from {ADAPTER_CONFIG} (r / rank_pattern)"
            )
        alpha = float(_pattern_value(cfg.get("alpha_pattern"), mod, cfg["lora_alpha"]))
        scale = alpha / math.sqrt(r) if rslora else alpha / r
        modules[mod] = ModuleLoRA(a, b, scale, alpha)
    if not modules:
        raise ArtifactError(f"{w_path}: no LoRA weights found")
    default = manifest.get("dimension") if manifest else Path(folder).name
    return ExpertWeights(name or default, adapter_dir, cfg, tensors, modules, manifest)


def write_peft_adapter(folder: str | Path, config: dict, tensors: dict[str, Tensor]) -> Path:
    """Write a standard PEFT adapter folder (config JSON + safetensors), loadable by PeftModel."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / ADAPTER_CONFIG, config)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(flat, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return folder


def inject_mocae(
    model: nn.Module, experts: dict[str, ExpertWeights], state: RoutingState
) -> dict[str, MoCaELinear]:
    """Wrap every nn.Linear that any expert targets in a MoCaELinear holding ALL experts.

    Experts are added in `experts` order; one that does not target a module gets rank 0 there
    (A (0, d_in), B (d_out, 0), s 0), so gate k is the same expert everywhere. Everything is
    validated before the first module is swapped, so an error leaves `model` untouched.
    Layers that read one input (q/k/v, gate/up of a block) are grouped to share their LoRA A
    matmul at inference (nn/siblings.py). Returns module name -> layer, in module order.
    """
    wanted = {m for ew in experts.values() for m in ew.modules}
    named = dict(model.named_modules())
    tied = getattr(model.get_input_embeddings(), "weight", None)
    for ew in experts.values():
        for mod, lo in ew.modules.items():
            target = named.get(mod)
            where = f"expert {ew.name!r} ({ew.folder})"
            if target is None:
                raise ArtifactError(
                    f"{where} targets {mod!r}, which this backbone does not have; "
                    "was it trained on another backbone?"
                )
            if isinstance(target, MoCaELinear):
                raise ValueError(f"{mod} is already a MoCaELinear; inject into a fresh backbone")
            if not isinstance(target, nn.Linear):
                raise ArtifactError(
                    f"{where} targets {mod!r} of type {type(target).__name__}; "
                    "only nn.Linear targets are supported"
                )
            if tied is not None and target.weight is tied:
                raise ArtifactError(
                    f"{where} targets {mod!r}, whose weight is tied to the input "
                    "embeddings; LoRA on tied embeddings is not supported"
                )
            if (
                lo.lora_A.shape[1] != target.in_features
                or lo.lora_B.shape[0] != target.out_features
            ):
                raise ArtifactError(
                    f"{where}: {mod} has A {tuple(lo.lora_A.shape)}, B "
                    f"{tuple(lo.lora_B.shape)} but the layer is "
                    f"{target.out_features}x{target.in_features}"
                )
    layers: dict[str, MoCaELinear] = {}
    for mod in (n for n in named if n in wanted):
        base = named[mod]
        layer = MoCaELinear(base, state)
        for ename, ew in experts.items():
            lo = ew.modules.get(mod)
            if lo is None:
                w = base.weight
                layer.add_expert(
                    ename, w.new_zeros(0, base.in_features), w.new_zeros(base.out_features, 0), 0.0
                )
            else:
                layer.add_expert(ename, lo.lora_A, lo.lora_B, lo.scale)
        model.set_submodule(mod, layer)
        layers[mod] = layer
    group_siblings(layers)
    return layers


def expert_weights_hash_check(ew: ExpertWeights, weights_hash: str, backbone: str) -> None:
    """An expert artifact records the backbone it was trained on; refuse a different one."""
    want = (ew.manifest or {}).get("backbone_weights_hash")
    if want and want != weights_hash:
        raise ArtifactError(
            f"expert {ew.name!r} ({ew.folder.parent}) was trained on backbone "
            f"{ew.manifest.get('backbone')!r} (weights sha256 {want[:12]}), but {backbone!r} has "
            f"{weights_hash[:12]}; compose experts on the backbone they were trained on"
        )
