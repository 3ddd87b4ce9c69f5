"""Output-level ensemble baseline: K fine-tuned models, next-token probabilities averaged.

Each expert is merged into its own copy of the backbone (K full models in memory), every decode
step runs all K (each with its own KV cache) and the next token is argmax_v sum_m w_m p_m(v).
It is the memory / latency reference for "composition outside the model": K times the weights
and K forward passes per token, against MoCaE's one model and one pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from trinityx.model.backbone import Backbone
from trinityx.model.baselines.finetuned import load_experts, merge_expert
from trinityx.model.inject import ExpertWeights


class OutputEnsemble:
    """K causal LMs whose next-token distributions are mixed with weights w (K,), sum 1."""

    def __init__(
        self, members: Sequence[nn.Module], tokenizer, weights: Sequence[float] | None = None
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        w = (
            torch.ones(len(members))
            if weights is None
            else torch.tensor(weights, dtype=torch.float)
        )
        if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"need {len(members)} non-negative weights, got {list(weights or [])}")
        self.weights = (w / w.sum()).tolist()
        self.tokenizer = tokenizer

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        max_new_tokens: int = 32,
        eos_token_id: int | None = None,
    ) -> Tensor:
        """Greedy decoding on left-padded prompts; returns (B, T_prompt + new) like HF generate.

        eos_token_id: rows that emit it are padded from then on, and the loop stops once every
        row is done (None: always max_new_tokens steps, as the benchmark needs).
        """
        dev = next(self.members[0].parameters()).device
        ids = input_ids.to(dev)
        mask = (torch.ones_like(ids) if attention_mask is None else attention_mask).to(dev)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T): left padding skipped
        caches: list = [None] * len(self.members)
        step_ids, out = ids, [ids]
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=dev)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for _ in range(max_new_tokens):
            probs = None
            for m, (model, w) in enumerate(zip(self.members, self.weights, strict=True)):
                o = model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=caches[m],
                    use_cache=True,
                    logits_to_keep=1,  # the prompt's (T, V) logits are never needed
                )
                caches[m] = o.past_key_values
                p = torch.softmax(o.logits[:, -1].float(), -1) * w  # (B, V)
                probs = p if probs is None else probs.add_(p)
            nxt = probs.argmax(-1)  # (B,)
            if eos_token_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                done |= nxt == eos_token_id
            out.append(nxt[:, None])
            if eos_token_id is not None and bool(done.all()):
                break
            step_ids = nxt[:, None]
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
            pos = pos[:, -1:] + 1
        return torch.cat(out, 1)


def build_ensemble(
    backbone: Backbone,
    experts: Mapping[str, str | Path | ExpertWeights],
    weights: Sequence[float] | None = None,
) -> OutputEnsemble:
    """One merged copy of `backbone.model` per expert (the backbone itself is left unchanged)."""
    loaded = load_experts(experts)
    members = [merge_expert(copy.deepcopy(backbone.model), ew).eval() for ew in loaded.values()]
    return OutputEnsemble(members, backbone.tokenizer, weights)
