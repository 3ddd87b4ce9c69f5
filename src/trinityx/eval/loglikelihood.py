"""Log-likelihood scheduling for `EvalModel.loglikelihood`: dedupe, shared prefixes, padded batches.

Three exact savings, in order:

* identical (context, continuation) token pairs are scored once (TruthfulQA's MC1 choices are
  mostly repeated among its MC2 choices: 4936 requests, 2849 distinct on the 409 test questions);
* requests sharing a context run it once, as a KV cache that every continuation extends;
* where the model allows it (`EvalModel.primer_sharing`), the longest token prefix common to all
  contexts of the call (TruthfulQA's six-shot primer, 172 of ~185 tokens with SmolLM2's
  tokenizer) runs once per call, and each context only extends it by its own last tokens.

A prefix's keys and values depend only on the prefix tokens (causal attention) and on the
routing inputs the model was run under (`EvalModel._context_fields`), so a cached prefix is
exact whenever those inputs are the same for every context that shares it; the model decides
(see `trinityx_model.TrinityXEvalModel.primer_sharing`). Everything else runs as left-padded
batches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from trinityx.model.lm_head import rows_per_pass


class ScoringModel(Protocol):
    """What scheduling needs of a model: the part of `eval.model_api.EvalModel` it calls.

    Written out here (not imported) so that `model_api` can call this module without a circle.
    """

    name: str
    tokenizer: object
    device: torch.device
    max_length: int
    prefix_sharing: bool
    primer_sharing: bool
    logits_budget_mb: float
    vocab_size: int

    def _context_fields(self, ctx: Tensor) -> dict: ...

    def _call(self, fields: dict, **model_kwargs): ...

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor: ...


MIN_PRIMER_TOKENS = 8  # a shorter common prefix is not worth its cache copies


@dataclass
class PrefixState:
    """A prefix run once: its length P, its KV cache (1, P) and the routing inputs it ran with."""

    length: int
    cache: object
    fields: dict


def extend(model: ScoringModel, parent: PrefixState | None, new: list[int], fields: dict):
    """A new PrefixState: `parent` (or nothing) followed by tokens `new`, run under `fields`."""
    P = 0 if parent is None else parent.length
    cache = None if parent is None else copy.deepcopy(parent.cache)  # keep the parent intact
    ids = torch.tensor([new], device=model.device)  # (1, n)
    pos = torch.arange(P, P + len(new), device=model.device)[None]  # (1, n)
    out = model._call(
        fields,
        input_ids=ids,
        attention_mask=torch.ones((1, P + len(new)), dtype=torch.long, device=model.device),
        position_ids=pos,
        past_key_values=cache,
        use_cache=True,
    )
    return PrefixState(P + len(new), out.past_key_values, fields)


def shared_forward(model: ScoringModel, state: PrefixState, ids: Tensor, mask: Tensor) -> Tensor:
    """Logits (B, S, V) of right-padded suffixes `ids` (B, S) after the shared prefix."""
    P = state.length
    cache = copy.deepcopy(state.cache)  # the suffix forward appends to it
    cache.batch_repeat_interleave(ids.shape[0])
    full_mask = torch.cat([mask.new_ones(ids.shape[0], P), mask], 1)  # (B, P + S)
    pos = (P + torch.arange(ids.shape[1], device=ids.device)).expand_as(ids)  # (B, S)
    return model._call(
        state.fields,
        input_ids=ids,
        attention_mask=full_mask,
        position_ids=pos,
        past_key_values=cache,
    ).logits


def common_prefix(seqs: list[tuple[int, ...]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    if not seqs:
        return 0
    lo, hi = min(seqs), max(seqs)  # the lexicographic extremes bound every common prefix
    n = 0
    while n < min(len(lo), len(hi)) and lo[n] == hi[n]:
        n += 1
    return n


def sum_logprob(logits: Tensor, cont: list[int]) -> float:
    """sum_t log softmax(logits[t])[cont[t]] for logits (n, V) predicting cont (n,)."""
    lp = torch.log_softmax(logits.float(), -1)
    return float(lp.gather(-1, torch.tensor(cont, device=lp.device)[:, None]).sum())


def score_shared(model: ScoringModel, enc: list, groups: dict, batch_size: int) -> dict[int, float]:
    """index -> log-likelihood for requests grouped by shared context (ctx tuple -> indices)."""
    out: dict[int, float] = {}
    dev, pad = model.device, model.tokenizer.pad_token_id or 0
    primer = None
    if model.primer_sharing and len(groups) > 1:
        p0 = common_prefix([ctx[:-1] for ctx in groups])  # the last token predicts, never cached
        if p0 >= MIN_PRIMER_TOKENS:
            first = next(iter(groups))
            fields = model._context_fields(torch.tensor([list(first)], device=dev))
            primer = extend(model, None, list(first[:p0]), fields)
    for ctx, idx in tqdm(
        groups.items(),
        desc=f"loglik {model.name} (shared contexts)",
        leave=False,
        disable=len(groups) < 2,
    ):
        if primer is not None:
            rest = list(ctx[primer.length : -1])
            state = extend(model, primer, rest, primer.fields) if rest else primer
        else:
            fields = model._context_fields(torch.tensor([list(ctx)], device=dev))
            state = extend(model, None, list(ctx[:-1]), fields)
        for s in range(0, len(idx), batch_size):
            part = idx[s : s + batch_size]
            # the last context token predicts the first continuation token
            rows = [[ctx[-1], *enc[i][1][:-1]] for i in part]
            S = max(len(r) for r in rows)
            ids = torch.full((len(rows), S), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), S), dtype=torch.long)
            for b, r in enumerate(rows):
                ids[b, : len(r)], mask[b, : len(r)] = torch.tensor(r), 1  # right padding
            step = rows_per_pass(S, model.vocab_size, model.logits_budget_mb)
            for r in range(0, len(part), step):  # one pass's logits (rows, S, V) within budget
                sl = slice(r, r + step)
                logits = shared_forward(model, state, ids[sl].to(dev), mask[sl].to(dev))
                for b, i in enumerate(part[sl]):
                    cont = enc[i][1]
                    out[i] = sum_logprob(logits[b, : len(cont)], cont)
    return out


def score_padded(model: ScoringModel, enc: list, indices: list[int], batch_size: int) -> dict:
    """index -> log-likelihood, one left-padded forward per batch (long requests first)."""
    out: dict[int, float] = {}
    L, dev, pad = model.max_length, model.device, model.tokenizer.pad_token_id or 0
    rows = {}  # index -> (input ids, number of continuation tokens, number of context tokens)
    for i in indices:
        ctx, cont = enc[i]
        inp = (ctx + cont)[-(L + 1) :][:-1]  # left-truncated to the context window
        rows[i] = (inp, len(cont), len(inp) - len(cont) + 1)
    order = sorted(indices, key=lambda i: -len(rows[i][0]))  # long first, as lm-eval
    starts = range(0, len(order), batch_size)
    for s in tqdm(starts, desc=f"loglik {model.name}", leave=False, disable=len(starts) < 2):
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
        step = rows_per_pass(keep, model.vocab_size, model.logits_budget_mb)
        for r in range(0, len(idx), step):  # one pass's logits (rows, keep, V) within budget
            sl = slice(r, r + step)
            logits = model._forward(ids[sl].to(dev), mask[sl].to(dev), ctx_mask[sl].to(dev), keep)
            logits = logits[:, -keep:]  # (rows, keep, V): position t predicts token t + 1
            for b, i in enumerate(idx[sl]):
                n = rows[i][1]
                out[i] = sum_logprob(logits[b, keep - n :], enc[i][1][-n:])
    return out


def loglikelihood(model: ScoringModel, enc: list, batch_size: int) -> list[float]:
    """Scores of encoded requests [(ctx ids, cont ids)] in order (empty continuations: 0.0)."""
    first: dict[tuple, int] = {}  # distinct (ctx, cont) -> the first request index
    for i, (ctx, cont) in enumerate(enc):
        if cont:
            first.setdefault((tuple(ctx), tuple(cont)), i)
    groups: dict[tuple[int, ...], list[int]] = {}
    for (ctx, _), i in first.items():
        groups.setdefault(ctx, []).append(i)
    fits = model.max_length + 1
    shared = {
        ctx: idx
        for ctx, idx in groups.items()
        if model.prefix_sharing
        and len(ctx) > 1
        and (len(idx) > 1 or model.primer_sharing)
        and len(ctx) + max(len(enc[i][1]) for i in idx) <= fits
    }
    rest = [i for ctx, idx in groups.items() if ctx not in shared for i in idx]
    scores = score_shared(model, enc, shared, batch_size)
    scores.update(score_padded(model, enc, rest, batch_size))
    return [scores[first[(tuple(ctx), tuple(cont))]] if cont else 0.0 for ctx, cont in enc]
