"""Prompt formatting with the backbone's chat template, and prompt-masked tokenisation.

One function decides which tokens carry loss, and every consumer uses it: expert training (handed
to TRL pre-tokenised), held-out loss, router LM loss and evaluation. Loss falls on the response
tokens and the end-of-turn marker only, never on the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from trinityx.data.records import Message, SFTExample

IGNORE_INDEX = -100


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> list[int]:
    """Token ids of the chat prompt up to and including the assistant header."""
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] if the tokenizer itself starts plain text with BOS, else [].

    Gemma's does, and Gemma scores text without a leading BOS far worse (lm-eval turns
    `add_bos_token` on for Gemma for this reason); SmolLM2's does not, so its contexts are
    unchanged. Chat-templated contexts that already begin with BOS do not get a second one.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if ids and ids[0] == bos else []


def prompt_string(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> str:
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)


def encode_sft(
    tokenizer: PreTrainedTokenizerBase, example: SFTExample, max_length: int = 256
) -> dict[str, list[int]]:
    """input_ids and labels (-100 on prompt tokens) for one example, truncated to `max_length`.

    The response is tokenised as the continuation of the templated prompt, so the label tokens are
    exactly what the model must generate after the assistant header, end-of-turn token included.
    """
    p_ids = prompt_ids(tokenizer, example.messages)
    full = tokenizer.apply_chat_template(
        [*example.messages, {"role": "assistant", "content": example.response}], tokenize=False
    )
    prompt = prompt_string(tokenizer, example.messages)
    if not full.startswith(prompt):
        raise ValueError(
            f"{example.source or 'example'}: the chat template does not render the prompt as a prefix "
            "of prompt+response; TrinityX needs a template where it does (e.g. ChatML)"
        )
    # Keep the templated tail (e.g. ChatML's trailing newline) out of the loss: stop at the EOS.
    completion = full[len(prompt) :]
    eos = tokenizer.eos_token or ""
    if eos and eos in completion:
        completion = completion[: completion.index(eos) + len(eos)]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = (p_ids + c_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(p_ids) + c_ids)[:max_length]
    return {"input_ids": ids, "labels": labels}


def collate(batch: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids (B, T), attention_mask (B, T), labels (B, T)."""
    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        mask[i, :n] = 1
        if "labels" in b:
            labels[i, :n] = torch.tensor(b["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
