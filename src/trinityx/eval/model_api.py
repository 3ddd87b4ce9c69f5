"""The narrow interface benchmarks use to talk to a model (lm-evaluation-harness style).

A benchmark only ever calls `generate` (chat prompts -> greedy answers) and `loglikelihood` (raw
text (context, continuation) pairs -> summed continuation log-probs), so a plain HF model, a
PeftModel, a static merge, an H3Fusion-style MoE and TrinityX are evaluated by exactly the same
code. `fingerprint` names the exact weights and settings, and keys the on-disk output cache.

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


def trinityx_fingerprint(model, **settings) -> str:
    """Backbone weights hash + expert adapter tensors + router tensors + calibration + settings."""
    h = hashlib.sha256()
    for name, ew in model.experts.items():
        h.update(name.encode())
        for k, t in sorted(ew.tensors.items()):
            h.update(k.encode())
            h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    if model.routing != "none":
        # the same tensors save_pretrained writes to router.safetensors
        for k, t in sorted(model.router_tensors().items()):
            h.update(k.encode())
            h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return fingerprint_of(
        backbone=model.backbone.weights_hash,
        tensors=h.hexdigest(),
        routing=model.routing,
        pool_layer=model.pool_layer,
        calibration=model.calibration_state(),
        top_k=model.top_k,
        **settings,
    )


class TrinityXEvalModel(EvalModel):
    """A TrinityXModel under fixed user HHH weights (None: the router alone decides).

    What is routed for `loglikelihood`: in token mode every layer routes every token of
    context + continuation (as in generation, where the answer's tokens route themselves); in
    sequence mode the gates come from the context alone (the prompt, as in generation) and are
    held fixed over the continuation, so the continuation never influences its own gates.
    """

    def __init__(
        self,
        model,
        hhh_weights: dict | None = None,
        weight_mode: str = "multiply",
        name: str | None = None,
        fingerprint: str | None = None,
        refusal_tau: float | None = None,
    ) -> None:
        self.model, self.tokenizer = model, model.tokenizer
        self.config = model.model.config
        self.logits_budget_mb = model.backbone.logits_budget_mb
        self.hhh_weights, self.weight_mode = hhh_weights, weight_mode
        self.prefs = model.resolve_weights(hhh_weights, mode=weight_mode)  # validates early
        self.refusal_tau = refusal_tau  # model/presets.py: the refusal dial (None: off)
        self.name = name or f"trinityx-{model.routing}"
        dial = {} if refusal_tau is None else {"refusal_tau": refusal_tau}  # old keys unchanged
        self.fingerprint = fingerprint or trinityx_fingerprint(
            model, hhh_weights=hhh_weights, weight_mode=weight_mode, **dial
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        from trinityx.nn.router import combine_gates

        m = self.model
        if self.refusal_tau is not None:  # the dial decides from the context alone
            return m.logits(ids, mask, **self._dial_fields(ids, ctx_mask), logits_to_keep=keep)
        if self.weight_mode == "fixed" or m.routing == "token":
            return m.logits(
                ids,
                mask,
                hhh_weights=self.hhh_weights,
                weight_mode=self.weight_mode,
                logits_to_keep=keep,
            )
        B, K = ids.shape[0], len(m.expert_names)
        if m.routing == "sequence":
            probs = m.router_probs(ids, ctx_mask)  # (B, K): the context alone
        else:
            probs = torch.full((B, K), 1.0 / K, device=m.device)
        prefs = None if self.prefs is None else self.prefs.to(m.device).expand(B, -1)
        gates = combine_gates(probs, prefs, self.weight_mode, m.top_k)  # (B, K)
        return m.logits(ids, mask, gates=gates, logits_to_keep=keep)

    def _dial_fields(self, ids: Tensor, ctx_mask: Tensor) -> dict:
        """`logits` kwargs under the refusal dial: per-row pi chosen from the context alone
        (sequence routing then still routes on the context: the gates below are final)."""
        from trinityx.model.presets import dial_prefs
        from trinityx.nn.router import combine_gates

        m, B, K = self.model, ids.shape[0], len(self.model.expert_names)
        probs = m.router_probs(ids, ctx_mask)  # (B, K) calibrated, from the context
        base = None if self.prefs is None else self.prefs.to(m.device).expand(B, -1)
        prefs = dial_prefs(probs, base, m.expert_names, self.refusal_tau)
        if self.weight_mode == "fixed" or m.routing == "token":
            return {"hhh_weights": prefs, "weight_mode": self.weight_mode}
        if m.routing == "none":
            probs = torch.full((B, K), 1.0 / K, device=m.device)
        return {"gates": combine_gates(probs, prefs, self.weight_mode, m.top_k)}

    prefix_sharing = True

    @property
    def primer_sharing(self) -> bool:
        """Whether a cached prefix may serve different contexts, i.e. whether the routing
        inputs of a forward are the same for every context:

        * token routing: yes. Each token's gates come from its own hidden state at each layer,
          which depends on the tokens up to it only (causal), so a prefix's keys and values are
          the same whatever follows it: the primer is exact across questions (as a KV cache is
          exact in token-mode generation).
        * fixed weights / routing "none": yes, the gates are the user's alone.
        * sequence routing: no. The gates come from the whole context (question included) and
          change every W of every layer, so a primer run under one question's gates is wrong
          for the next question. Choices of one question still share its context.
        """
        if self.refusal_tau is not None:  # the dial reads each whole context
            return False
        return self.weight_mode == "fixed" or self.model.routing != "sequence"

    def _context_fields(self, ctx: Tensor) -> dict:
        """The RoutingState inputs `logits` would use for this context (sequence routing: the
        gates from the context alone, as `_forward` and generation use them)."""
        mask = torch.ones_like(ctx)
        return self.model._prepare(
            ctx, mask, self.hhh_weights, self.weight_mode, False, None, refusal_tau=self.refusal_tau
        )[0]

    def _call(self, fields: dict, **model_kwargs):
        with self.model._routing(**fields):
            return self.model.model(**model_kwargs)

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        res = self.model.generate(
            [list(p) for p in prompts],
            hhh_weights=self.hhh_weights,
            weight_mode=self.weight_mode,
            max_new_tokens=max_new_tokens,
            return_routing=False,
            do_sample=False,
            refusal_tau=self.refusal_tau,
        )
        return [t.strip() for t in res.texts]
