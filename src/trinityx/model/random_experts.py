"""Random-init PEFT LoRA adapters for the HHH dimensions: stand-ins for speed and memory work.

Speed and memory do not depend on what the experts learned, only on their shapes, so the
benchmark (and quick experiments) can run without a trained expert: one adapter per name, rank r
on every matching nn.Linear, written in the standard PEFT layout (`load_peft_adapter` and
`PeftModel.from_pretrained` both read it). B is small and non-zero, so compositions really
change the outputs (a B = 0 expert would make every system trivially equal) without turning
the backbone into noise.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from trinityx.model.inject import ADAPTER_WEIGHTS, KEY_PREFIX

HHH = ("helpful", "harmless", "honest")
ALL_LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_random_experts(
    model: nn.Module,
    folder: str | Path,
    names: tuple[str, ...] = HHH,
    rank: int = 8,
    alpha: float = 16.0,
    targets: tuple[str, ...] = ALL_LINEAR_TARGETS,
    b_std: float = 2e-3,
    seed: int = 0,
    base_model_name_or_path: str | None = None,
) -> dict[str, Path]:
    """Write one random rank-`rank` adapter per name under folder/<name>; returns name -> dir.

    A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (PEFT's kaiming-uniform scale), B ~ N(0, b_std).
    `model` is only read (module names and shapes).
    """
    from peft import LoraConfig

    linears = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in targets
    }
    if not linears:
        raise ValueError(f"no nn.Linear named one of {targets} in {type(model).__name__}")
    folder = Path(folder)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Path] = {}
    for name in names:
        tensors = {}
        for mod, lin in linears.items():
            bound = 1.0 / lin.in_features**0.5
            a = (torch.rand(rank, lin.in_features, generator=gen) * 2 - 1) * bound  # (r, d_in)
            b = torch.randn(lin.out_features, rank, generator=gen) * b_std  # (d_out, r)
            tensors[f"{KEY_PREFIX}{mod}.lora_A.weight"] = a
            tensors[f"{KEY_PREFIX}{mod}.lora_B.weight"] = b
        cfg = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=sorted({m.rsplit(".", 1)[-1] for m in linears}),
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            base_model_name_or_path=base_model_name_or_path,
        )
        dest = folder / name
        dest.mkdir(parents=True, exist_ok=True)
        cfg.save_pretrained(str(dest))  # adapter_config.json, serialised the way PEFT reads it
        save_file(tensors, str(dest / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        out[name] = dest
    return out
