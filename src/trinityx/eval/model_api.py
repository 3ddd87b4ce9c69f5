"""The narrow interface benchmarks use to talk to a model (lm-evaluation-harness style).

A benchmark only ever calls `generate` (chat prompts -> greedy answers) and `loglikelihood` (raw
text (context, continuation) pairs -> summed continuation log-probs), so a plain HF model, a
PeftModel, a static merge, an H3Fusion-style MoE and TrinityX are evaluated by exactly the same
code. Here: the interface and the plain HF model; TrinityX under fixed HHH weights is
`trinityx_model.TrinityXEvalModel`, the prior MoEs are in `baselines_moe`. `fingerprint` names the exact weights and settings, and keys the on-disk output cache.

Log-likelihood follows lm-eval's HFLM: trailing whitespace of the context moves onto the
continuation, context and context+continuation are tokenised separately (no special tokens) and
the continuation tokens are the tail of the whole; an empty context is replaced by the BOS (else
EOS) token; inputs are left-truncated to the model's context length.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from trinityx.data.formatting import bos_prefix, prompt_string
from trinityx.eval import loglikelihood as LL

Messages = Sequence[dict]


def fingerprint_of(**parts) -> str:
    """Stable sha256 of named parts (strings, numbers, dicts, lists)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-eval's HFLM._encode_pair (`bos_prefix`
    first where the tokenizer adds one, as lm-eval's `add_bos_token`)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if context == "":
        prefix = tokenizer.bos_token_id
        prefix = tokenizer.eos_token_id if prefix is None else prefix
        return [prefix], tokenizer(continuation, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    bos = bos_prefix(tokenizer)
    return (bos if ctx[:1] != bos else []) + ctx, whole[len(ctx) :]


class EvalModel(abc.ABC):
    """What benchmarks see of a model. Subclasses provide one forward and one generate batch."""

    name: str
    fingerprint: str
    tokenizer: object

    logits_budget_mb: float = (
        512.0  # cap on one scoring forward's float32 logits (loglikelihood.py)
    )

    @property
    def vocab_size(self) -> int:
        """Logits per position (Gemma 3: 262k, so 1 MB of float32 per scored token)."""
        return int(self.config.vocab_size)

    @property
    def max_length(self) -> int:
        """Context window used to left-truncate log-likelihood inputs."""
        return int(getattr(self.config, "max_position_embeddings", 2048) or 2048)

    def chat_prompt(self, messages: Messages) -> str:
        """The chat-templated prompt string (ends with the assistant header) that generate sees."""
        return prompt_string(self.tokenizer, list(messages))

    # ------------------------------------------------------------------ generation
    @abc.abstractmethod
    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        """Greedy answers for one batch of chat prompts (left padding), stripped."""

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Messages], max_new_tokens: int = 256, batch_size: int = 8
    ) -> list[str]:
        """Greedy answers (chat template, left padding), in the order of `prompts`."""
        out: list[str] = []
        starts = range(0, len(prompts), batch_size)
        for s in tqdm(starts, desc=f"generate {self.name}", leave=False, disable=len(starts) < 2):
            out.extend(self._generate_batch(list(prompts[s : s + batch_size]), max_new_tokens))
        return out

    # ------------------------------------------------------------------ log-likelihood
    @abc.abstractmethod
    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        """Logits (B, >= keep, V) of a left-padded batch whose last `keep` positions matter.

        ctx_mask (B, T) marks each row's context tokens (for sequence routing).
        """

    prefix_sharing = False
    """True if `_call` runs the model on a KV cache (a context shared by requests runs once)."""

    @property
    def primer_sharing(self) -> bool:
        """True if one cached prefix may serve contexts that differ after it (a few-shot primer
        across questions): `_context_fields` must then not depend on the context."""
        return self.prefix_sharing

    def _context_fields(self, ctx: Tensor) -> dict:
        """Routing inputs for every forward over context `ctx` (1, C) and its continuations."""
        return {}

    def _call(self, fields: dict, **model_kwargs):
        """One model forward (HF kwargs: ids, mask, positions, cache) under routing `fields`."""
        raise NotImplementedError

    @torch.no_grad()
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: int = 8
    ) -> list[float]:
        """Sum of log P(continuation tokens | context) per (context, continuation), raw text.

        Identical requests are scored once; requests sharing a context (TruthfulQA's choices,
        hh-rlhf's chosen / rejected) run the context once, and a prefix common to all contexts
        (a few-shot primer) once per call, when the model supports it (`prefix_sharing`,
        `primer_sharing`; eval/loglikelihood.py). The rest run as left-padded batches. All give
        the same numbers as one unpadded forward per request (up to float rounding).
        """
        enc = [encode_pair(self.tokenizer, c, x) for c, x in requests]
        return LL.loglikelihood(self, enc, batch_size)


class HFEvalModel(EvalModel):
    """A plain HF causal LM, a PeftModel or a merged model."""

    def __init__(self, model, tokenizer, name: str, fingerprint: str) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.name, self.fingerprint = name, fingerprint
        self.config = model.config
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        pos = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T): positions skip the left padding
        return self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep
        ).logits

    prefix_sharing = True

    def _call(self, fields: dict, **model_kwargs):
        return self.model(**model_kwargs)

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        texts = [self.chat_prompt(p) for p in prompts]
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        gen = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
