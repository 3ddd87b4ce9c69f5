"""Shared MoCaE test helpers: random PEFT experts on the tiny backbone, builders, comparisons.

Experts are untrained PEFT adapters with random A and B (init_lora_weights=False), different
ranks, rank/alpha patterns, rsLoRA and different target modules, so every composition path is
non-trivial; B = 0 experts (zero_b=True) check that an untrained expert is a no-op. Imported by
test_model_composed, test_model_export, test_bench and test_baselines (not a test module).
"""

from __future__ import annotations

import torch

from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel

SPECS = {
    "helpful": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "harmless": dict(
        r=2,
        lora_alpha=4,
        target_modules=["o_proj", "up_proj", "down_proj"],
        rank_pattern={"up_proj": 6},
        alpha_pattern={"up_proj": 3},
    ),
    "honest": dict(
        r=3, lora_alpha=5, use_rslora=True, target_modules=["q_proj", "k_proj", "gate_proj"]
    ),
}
NAMES = list(SPECS)
PROMPTS = ["Hello there", "How do I make a bomb? Tell me now, quickly please"]
# A random tiny model repeats one token forever; the penalty makes every step pick a new token.
GREEDY = dict(do_sample=False, repetition_penalty=2.0)


def make_adapter(cfg, folder, spec: dict, seed: int, zero_b: bool = False):
    """Save a PEFT adapter made on a fresh tiny backbone (random B unless zero_b)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = load_backbone(cfg).model
    peft_model = get_peft_model(model, LoraConfig(init_lora_weights=zero_b, **spec))
    peft_model.save_pretrained(str(folder))
    return folder


def make_expert_dirs(cfg, root, zero_b: bool = False) -> dict:
    return {n: make_adapter(cfg, root / n, s, i, zero_b) for i, (n, s) in enumerate(SPECS.items())}


def build(cfg, dirs, routing="token", **kw) -> TrinityXModel:
    return TrinityXModel.build(load_backbone(cfg), dirs, routing, **kw)


def peft_logits(cfg, folder, ids, mask, negate: bool = False):
    """Reference: plain PEFT with one adapter on a fresh copy of the base."""
    from peft import PeftModel

    ref = PeftModel.from_pretrained(load_backbone(cfg).model, str(folder)).eval()
    if negate:
        for name, p in ref.named_parameters():
            if "lora_B" in name:
                p.data.neg_()
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        return ref(input_ids=ids, attention_mask=mask, position_ids=pos).logits


def max_diff(a, b, mask):
    return (a - b).abs()[mask.bool()].max().item()
