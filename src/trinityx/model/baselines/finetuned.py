"""Fine-tuned models for the baselines: one expert's s_k B_k A_k folded into plain nn.Linear weights.

The baselines (output-level ensemble, H3Fusion-style MoE) need "fine-tuned models", i.e. the
backbone with an expert's LoRA delta folded into the weights. TrinityX's own exact export lives
in model/export.py; these helpers work on any HF model and accumulate in float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trinityx.model.inject import ExpertWeights, ModuleLoRA, load_peft_adapter


def load_experts(experts: Mapping[str, str | Path | ExpertWeights]) -> dict[str, ExpertWeights]:
    """name -> ExpertWeights, reading adapter folders where paths are given."""
    return {
        n: e if isinstance(e, ExpertWeights) else load_peft_adapter(e, name=n)
        for n, e in experts.items()
    }


@torch.no_grad()
def add_lora_delta(linear: nn.Linear, lo: ModuleLoRA, weight: float = 1.0) -> None:
    """W <- W + weight * s * B A, in place (computed in float32, stored in W's dtype)."""
    w = linear.weight
    delta = lo.lora_B.float().to(w.device) @ lo.lora_A.float().to(w.device)  # (d_out, d_in)
    w.copy_((w.float() + (weight * lo.scale) * delta).to(w.dtype))


def target_linear(model: nn.Module, name: str, ew: ExpertWeights) -> nn.Linear:
    """model.<name> as an nn.Linear, or an error naming the expert and the module."""
    try:
        mod = model.get_submodule(name)
    except AttributeError as e:
        raise ValueError(
            f"expert {ew.name!r} ({ew.folder}) targets {name!r}, which this backbone lacks"
        ) from e
    if not isinstance(mod, nn.Linear):
        raise ValueError(f"expert {ew.name!r} targets {name!r} of type {type(mod).__name__}")
    return mod


def merge_expert(model: nn.Module, ew: ExpertWeights, weight: float = 1.0) -> nn.Module:
    """Fold one expert into `model` in place: every targeted W gets weight * s B A."""
    for name, lo in ew.modules.items():
        add_lora_delta(target_linear(model, name, ew), lo, weight)
    return model
