"""Exact exports of one fixed composition g (K,): a plain merged HF model, or one PEFT adapter.

Both equal the composed model run with `weight_mode="fixed"` and the same g (up to float
rounding), so any serving stack (vLLM, TGI, llama.cpp after conversion, plain PEFT) can serve a
chosen HHH trade-off without TrinityX:

* `export_merged`: W = W0 + sum_k g_k s_k B_k A_k folded into every target weight.
* `export_peft`: one LoRA adapter with A = cat_k A_k (R, d_in) and B = cat_k g_k s_k B_k
  (d_out, R), r = lora_alpha = R per module (scaling 1), since B A = sum_k g_k s_k B_k A_k.
  PEFT's own `add_weighted_adapter(combination_type="linear")` combines the A's and the B's
  separately, (sum_k w_k A_k) and (sum_k w_k B_k), whose product has cross terms B_j A_k and is
  NOT the weighted sum of task vectors; concatenation ("cat") is exact.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor
from transformers import PreTrainedModel

from trinityx.model.artifacts import atomic_dir, write_manifest
from trinityx.model.composed import TrinityXModel, WeightSpec
from trinityx.model.folding import folded_view
from trinityx.model.inject import ADAPTER_WEIGHTS, KEY_PREFIX


def _gates(model: TrinityXModel, weights: WeightSpec, allow_negative: bool) -> Tensor:
    """Validated fixed gates (K,) float32, with the same rules as `generate`."""
    return model.resolve_weights(weights, allow_negative, mode="fixed")


@contextlib.contextmanager
def merged_view(
    model: TrinityXModel, weights: WeightSpec, allow_negative: bool = False
) -> Iterator[PreTrainedModel]:
    """Temporarily swap every MoCaELinear for its merged nn.Linear; restored on exit.

    Costs one new weight per target module, not a copy of the whole model
    (`folding.folded_view`, the same fold `generate` uses for shared gates).
    """
    g = _gates(model, weights, allow_negative)
    with folded_view(model.model, model.layers, g) as hf:
        yield hf


def merged_state(
    model: TrinityXModel, weights: WeightSpec, allow_negative: bool = False
) -> PreTrainedModel:
    """A plain, independent HF model with g folded into W0 (the composed model is unchanged)."""
    with merged_view(model, weights, allow_negative) as hf:
        return copy.deepcopy(hf)


def _export_fields(model: TrinityXModel, g: Tensor) -> dict:
    return {
        "backbone": model.backbone.name,
        "backbone_weights_hash": model.backbone.weights_hash,
        "chat_template": model.backbone.chat_template,  # `plain`/`chatml`: TrinityX supplied it
        "experts": model.expert_names,
        "weights": dict(zip(model.expert_names, g.tolist(), strict=True)),
    }


def export_merged(
    model: TrinityXModel, weights: WeightSpec, folder: str | Path, allow_negative: bool = False
) -> Path:
    """Write a plain HF model folder (safetensors + tokenizer) with g merged in, atomically."""
    g = _gates(model, weights, allow_negative)
    with merged_view(model, g, allow_negative=True) as hf, atomic_dir(folder) as tmp:
        hf.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        write_manifest(tmp, "merged", **_export_fields(model, g))
    return Path(folder)


def export_peft(
    model: TrinityXModel, weights: WeightSpec, folder: str | Path, allow_negative: bool = False
) -> Path:
    """Write ONE exact PEFT LoRA adapter equal to sum_k g_k s_k B_k A_k (see module docstring).

    Ranks of experts with g_k = 0 are dropped (they contribute exactly nothing); modules left
    with no rank are not targeted. Per-module R goes to rank_pattern/alpha_pattern (keys are
    escaped full module names, matched by PEFT as regexes) where it differs from the common r.
    """
    from peft import LoraConfig

    g = _gates(model, weights, allow_negative)
    tensors: dict[str, Tensor] = {}
    ranks: dict[str, int] = {}
    for name, layer in model.layers.items():
        a, b_g, g_r = layer.gated_factors(g)  # s_k and g_k folded into B
        keep = g_r != 0
        if not bool(keep.any()):
            continue
        tensors[f"{KEY_PREFIX}{name}.lora_A.weight"] = a[keep]  # (R', d_in)
        tensors[f"{KEY_PREFIX}{name}.lora_B.weight"] = b_g[:, keep]  # (d_out, R')
        ranks[name] = int(keep.sum())
    if not ranks:
        raise ValueError(
            "every expert with a non-zero weight has rank 0 everywhere: nothing to export"
        )
    r = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {re.escape(n): v for n, v in ranks.items() if v != r}
    cfg = LoraConfig(
        r=r,
        lora_alpha=r,
        target_modules=list(ranks),
        rank_pattern=pattern,
        alpha_pattern=dict(pattern),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=model.backbone.source,
    )
    with atomic_dir(folder) as tmp:
        cfg.save_pretrained(str(tmp))  # adapter_config.json, serialised the way PEFT reads it
        flat = {k: v.contiguous().cpu() for k, v in tensors.items()}
        save_file(flat, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        write_manifest(tmp, "peft_export", **_export_fields(model, g))
    return Path(folder)
