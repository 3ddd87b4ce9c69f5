"""Scoring helpers shared by stages: masked LM loss and batched greedy generation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trinityx.data.formatting import collate, encode_sft, prompt_string
from trinityx.data.records import Message, SFTExample
from trinityx.model.lm_head import DEFAULT_LOGITS_BUDGET_MB, response_nll


@torch.no_grad()
def masked_lm_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[SFTExample],
    batch_size: int = 8,
    max_length: int = 256,
    logits_budget_mb: float = DEFAULT_LOGITS_BUDGET_MB,
) -> float:
    """Mean next-token NLL over response tokens only (the held-out loss experts are judged by).

    The LM head runs on response positions only, in chunks of at most `logits_budget_mb` of
    logits (model/lm_head.py): Gemma 3's 262k vocabulary would otherwise cost 1 MB per token.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    encoded = [encode_sft(tokenizer, ex, max_length) for ex in examples]
    for i in range(0, len(encoded), batch_size):
        batch = collate(encoded[i : i + batch_size], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        nll, n = response_nll(
            model, batch["input_ids"], batch["attention_mask"], batch["labels"], logits_budget_mb
        )
        total += float(nll)
        count += n
    return total / max(count, 1)


@torch.no_grad()
def generate_greedy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[Message]],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    **generate_kwargs,
) -> list[str]:
    """Greedy answers for chat prompts, left-padded in batches."""
    device = next(model.parameters()).device
    outs: list[str] = []
    for i in range(0, len(prompts), batch_size):
        texts = [prompt_string(tokenizer, p) for p in prompts[i : i + batch_size]]
        enc = tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        enc = {k: v.to(device) for k, v in enc.items()}
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            **generate_kwargs,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        outs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return [o.strip() for o in outs]
