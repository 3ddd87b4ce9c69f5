"""Which modules of a backbone a LoRA expert may target, checked before any training starts.

The default `lora.target_modules` are Llama's names (q/k/v/o_proj, gate/up/down_proj). Gemma 3
happens to use the same names, but other families do not (GPT-2's c_attn, Falcon's
query_key_value), and PEFT would then either fail late, deep in TRL, or match fewer layers than
the user meant. MoCaE composes only plain nn.Linear targets, and never one whose weight is the
tied input embedding (Gemma and SmolLM2 tie lm_head to embed_tokens: a LoRA there would also
change the input side). So the check says, up front and by name, which targets are missing
and which linear layers the backbone does have.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def linear_targets(model: nn.Module) -> dict[str, int]:
    """Leaf name -> how many nn.Linear modules have it, the output (LM) head excluded."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    counts: dict[str, int] = {}
    for name, mod in model.named_modules():
        if type(mod) is nn.Linear and mod is not head:
            leaf = name.rsplit(".", 1)[-1]
            counts[leaf] = counts.get(leaf, 0) + 1
    return counts


def check_target_modules(model: nn.Module, targets: Sequence[str]) -> dict[str, int]:
    """Every target names at least one nn.Linear of `model` (not the LM head / tied embedding).

    Returns target -> number of layers it matches; raises ValueError naming what is missing
    and the backbone's own linear layer names.
    """
    available = linear_targets(model)
    emb = getattr(model.get_input_embeddings(), "weight", None)
    head = model.get_output_embeddings()
    head_name = next((n for n, m in model.named_modules() if m is head and n), None)
    bad = []
    for t in targets:
        if head_name and t in (head_name, head_name.rsplit(".", 1)[-1]):
            tied = emb is not None and getattr(head, "weight", None) is emb
            why = "tied to the input embeddings" if tied else "the LM head"
            bad.append(f"{t!r} ({why}: not composable)")
        elif t not in available:
            bad.append(repr(t))
    if bad:
        raise ValueError(
            f"lora.target_modules {', '.join(bad)} match no usable nn.Linear in "
            f"{type(model).__name__}; its linear layers are {sorted(available)}"
        )
    return {t: available[t] for t in targets}
