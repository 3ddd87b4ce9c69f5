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
import copy
import hashlib
import json
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from trinityx.data.formatting import prompt_string

Messages = Sequence[dict]


def fingerprint_of(**parts) -> str:
    """Stable sha256 of named parts (strings, numbers, dicts, lists)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-eval's HFLM._encode_pair."""
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
    return ctx, whole[len(ctx) :]


class EvalModel(abc.ABC):
    """What benchmarks see of a model. Subclasses provide one forward and one generate batch."""

    name: str
    fingerprint: str
    tokenizer: object

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
    """True if `_shared_forward` is implemented (contexts shared by several requests run once)."""

    def _prefix_state(self, prefix: Tensor):
        """Whatever `_shared_forward` needs of a shared prefix (1, P), computed once per context."""
        raise NotImplementedError

    def _shared_forward(self, state, ids: Tensor, mask: Tensor) -> Tensor:
        """Logits (B, S, V) of right-padded suffixes `ids` (B, S) after the shared prefix."""
        raise NotImplementedError

    @torch.no_grad()
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: int = 8
    ) -> list[float]:
        """Sum of log P(continuation tokens | context) per (context, continuation), raw text.

        Requests sharing a context (TruthfulQA's choices, hh-rlhf's chosen / rejected) run the
        context once when the model supports it (`prefix_sharing`); the rest run as left-padded
        batches. Both give the same numbers as one unpadded forward per request (up to float
        rounding).
        """
        enc = [encode_pair(self.tokenizer, c, x) for c, x in requests]
        out = [0.0] * len(enc)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, cont) in enumerate(enc):
            if cont:
                groups.setdefault(tuple(ctx), []).append(i)
        shared = {
            ctx: idx
            for ctx, idx in groups.items()
            if self.prefix_sharing
            and len(idx) > 1
            and len(ctx) > 1
            and len(ctx) + max(len(enc[i][1]) for i in idx) <= self.max_length + 1
        }
        rest = [i for ctx, idx in groups.items() if ctx not in shared for i in idx]
        self._ll_shared(enc, shared, batch_size, out)
        self._ll_padded(enc, rest, batch_size, out)
        return out

    @staticmethod
    def _sum_logprob(logits: Tensor, cont: list[int]) -> float:
        """sum_t log softmax(logits[t])[cont[t]] for logits (n, V) predicting cont (n,)."""
        lp = torch.log_softmax(logits.float(), -1)
        return float(lp.gather(-1, torch.tensor(cont, device=lp.device)[:, None]).sum())

    def _ll_shared(self, enc, groups: dict, batch_size: int, out: list[float]) -> None:
        dev, pad = self.device, self.tokenizer.pad_token_id or 0
        for ctx, idx in tqdm(
            groups.items(),
            desc=f"loglik {self.name} (shared contexts)",
            leave=False,
            disable=len(groups) < 2,
        ):
            state = self._prefix_state(torch.tensor([list(ctx[:-1])], device=dev))  # (1, P)
            for s in range(0, len(idx), batch_size):
                part = idx[s : s + batch_size]
                # the last context token predicts the first continuation token
                rows = [[ctx[-1], *enc[i][1][:-1]] for i in part]
                S = max(len(r) for r in rows)
                ids = torch.full((len(rows), S), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), S), dtype=torch.long)
                for b, r in enumerate(rows):
                    ids[b, : len(r)], mask[b, : len(r)] = torch.tensor(r), 1  # right padding
                logits = self._shared_forward(state, ids.to(dev), mask.to(dev))  # (B, S, V)
                for b, i in enumerate(part):
                    cont = enc[i][1]
                    out[i] = self._sum_logprob(logits[b, : len(cont)], cont)

    def _ll_padded(self, enc, indices: list[int], batch_size: int, out: list[float]) -> None:
        L, dev, pad = self.max_length, self.device, self.tokenizer.pad_token_id or 0
        rows = {}  # index -> (input ids, number of continuation tokens, number of context tokens)
        for i in indices:
            ctx, cont = enc[i]
            inp = (ctx + cont)[-(L + 1) :][:-1]  # left-truncated to the context window
            rows[i] = (inp, len(cont), len(inp) - len(cont) + 1)
        order = sorted(indices, key=lambda i: -len(rows[i][0]))  # long first, as lm-eval
        starts = range(0, len(order), batch_size)
        for s in tqdm(starts, desc=f"loglik {self.name}", leave=False, disable=len(starts) < 2):
            idx = order[s : s + batch_size]
            T = max(len(rows[i][0]) for i in idx)
            keep = max(rows[i][1] for i in idx)
            ids = torch.full((len(idx), T), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            ctx_mask = torch.zeros((len(idx), T), dtype=torch.long)
            for b, i in enumerate(idx):
                inp, _, n_ctx = rows[i]
                ids[b, T - len(inp) :] = torch.tensor(inp)  # left padding
                mask[b, T - len(inp) :] = 1
                ctx_mask[b, T - len(inp) : T - len(inp) + n_ctx] = 1
            logits = self._forward(ids.to(dev), mask.to(dev), ctx_mask.to(dev), keep)
            logits = logits[:, -keep:]  # (B, keep, V): position t predicts token t + 1
            for b, i in enumerate(idx):
                n = rows[i][1]
                out[i] = self._sum_logprob(logits[b, keep - n :], enc[i][1][-n:])


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

    def _prefix_state(self, prefix: Tensor):
        cache = self.model(input_ids=prefix, use_cache=True).past_key_values  # keys/values (1, P)
        return prefix.shape[1], cache

    def _shared_forward(self, state, ids: Tensor, mask: Tensor) -> Tensor:
        P, cache = state
        cache = copy.deepcopy(cache)  # the suffix forward appends to it; keep the prefix intact
        cache.batch_repeat_interleave(ids.shape[0])
        full_mask = torch.cat([mask.new_ones(ids.shape[0], P), mask], 1)  # (B, P + S)
        pos = (P + torch.arange(ids.shape[1], device=ids.device)).expand_as(ids)  # (B, S)
        return self.model(
            input_ids=ids, attention_mask=full_mask, position_ids=pos, past_key_values=cache
        ).logits

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        texts = [self.chat_prompt(p) for p in prompts]
        old, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        try:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = old
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
        for k, t in sorted(model._router_tensors().items()):
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
    ) -> None:
        self.model, self.tokenizer = model, model.tokenizer
        self.config = model.model.config
        self.hhh_weights, self.weight_mode = hhh_weights, weight_mode
        self.prefs = model.resolve_weights(hhh_weights, mode=weight_mode)  # validates early
        self.name = name or f"trinityx-{model.routing}"
        self.fingerprint = fingerprint or trinityx_fingerprint(
            model, hhh_weights=hhh_weights, weight_mode=weight_mode
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        from trinityx.nn.router import combine_gates

        m = self.model
        if self.weight_mode == "fixed" or m.routing == "token":
            return m.logits(ids, mask, hhh_weights=self.hhh_weights, weight_mode=self.weight_mode)
        B, K = ids.shape[0], len(m.expert_names)
        if m.routing == "sequence":
            probs = m.router_probs(ids, ctx_mask)  # (B, K): the context alone
        else:
            probs = torch.full((B, K), 1.0 / K, device=m.device)
        prefs = None if self.prefs is None else self.prefs.to(m.device).expand(B, -1)
        gates = combine_gates(probs, prefs, self.weight_mode, m.top_k)  # (B, K)
        return m.logits(ids, mask, gates=gates)

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        res = self.model.generate(
            [list(p) for p in prompts],
            hhh_weights=self.hhh_weights,
            weight_mode=self.weight_mode,
            max_new_tokens=max_new_tokens,
            return_routing=False,
            do_sample=False,
        )
        return [t.strip() for t in res.texts]
