"""Log-probabilities of chosen tokens without materialising the (B, T, V) logits.

A float32 logits tensor costs 4 V bytes per token: 0.19 MB with SmolLM2's 49k vocabulary, 1 MB
with Gemma 3's 262k, so a batch of 8 x 256 tokens is 0.4 GB on one and 2.1 GB on the other,
before log_softmax copies it and autograd keeps it. Losses only need the log-probability of one
token per position, and only at labelled positions, so:

* `response_nll` runs the model with `logits_to_keep=1` and `output_hidden_states=True`, takes
  the final (post-norm) hidden states at the labelled positions only and applies the LM head in
  token chunks of at most `BackboneConfig.logits_budget_mb`; under autograd each chunk is
  checkpointed (recomputed in backward), so the peak is one chunk, not all of them.
* `rows_per_pass` / `micro_batch` size batches for code that needs whole logits rows (HF
  trainers, log-likelihood scoring) so one forward's logits stay under the same budget.

What it assumes is checked, not trusted: logits = softcap(lm_head(h_last)) with Gemma 2's
`final_logit_softcapping` when set. `response_nll` compares that against the model's own last
logits (computed anyway) and refuses a model whose head does something else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from trinityx.data.formatting import IGNORE_INDEX

if TYPE_CHECKING:
    from trinityx.model.backbone import Backbone

log = logging.getLogger(__name__)

DEFAULT_LOGITS_BUDGET_MB = 512.0
_F32 = 4  # bytes per logit


def tokens_per_chunk(vocab_size: int, budget_mb: float) -> int:
    """How many positions' float32 logits fit in `budget_mb` (at least 1)."""
    return max(1, int(budget_mb * 2**20) // (vocab_size * _F32))


def rows_per_pass(tokens_per_row: int, vocab_size: int, budget_mb: float) -> int:
    """Rows of `tokens_per_row` positions whose logits fit in `budget_mb` (at least 1)."""
    return max(1, tokens_per_chunk(vocab_size, budget_mb) // max(1, tokens_per_row))


def micro_batch(batch_size: int, tokens_per_row: int, vocab_size: int, budget_mb: float) -> int:
    """The largest divisor of `batch_size` whose logits fit: batch_size / it accumulation steps
    then give exactly the configured batch."""
    fit = rows_per_pass(tokens_per_row, vocab_size, budget_mb)
    return max(d for d in range(1, batch_size + 1) if batch_size % d == 0 and d <= fit)


def accumulation_split(
    batch_size: int, grad_accum: int, tokens_per_row: int, backbone: Backbone
) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps) for a trainer: batch_size x grad_accum stays
    exact while one forward's logits stay under `backbone.logits_budget_mb` (logged when split).
    Training holds a few tensors of that size (logits, log-softmax, gradient), not one."""
    model, budget = backbone.model, backbone.logits_budget_mb
    micro = micro_batch(batch_size, tokens_per_row, vocab_size(model), budget)
    if micro < batch_size:
        log.info(
            "batch %d -> %d rows x %d accumulation steps (logits budget %.0f MB)",
            batch_size,
            micro,
            batch_size // micro,
            budget,
        )
    return micro, grad_accum * (batch_size // micro)


def vocab_size(model: nn.Module) -> int:
    """Rows of the output embedding (what one position's logits cost), else config.vocab_size."""
    head = model.get_output_embeddings()
    w = getattr(head, "weight", None)
    return int(w.shape[0]) if w is not None else int(model.config.vocab_size)


def _softcap(model: nn.Module) -> float | None:
    return getattr(model.config, "final_logit_softcapping", None)


def head_logits(model: nn.Module, hidden: Tensor) -> Tensor:
    """Float32 logits of hidden states (..., d) exactly as the model's forward makes them."""
    z = model.get_output_embeddings()(hidden).float()
    cap = _softcap(model)
    return torch.tanh(z / cap) * cap if cap else z


def chosen_logprobs(model: nn.Module, hidden: Tensor, targets: Tensor, budget_mb: float) -> Tensor:
    """log p(targets[i] | hidden[i]) (N,) for hidden (N, d), at most `budget_mb` of logits alive."""

    def one(h: Tensor, t: Tensor) -> Tensor:
        z = head_logits(model, h)  # (n, V)
        return z.gather(-1, t[:, None])[:, 0] - torch.logsumexp(z, -1)

    step = tokens_per_chunk(vocab_size(model), budget_mb)
    grad = torch.is_grad_enabled() and hidden.requires_grad
    parts = [
        checkpoint(one, hidden[i : i + step], targets[i : i + step], use_reentrant=False)
        if grad and hidden.shape[0] > step
        else one(hidden[i : i + step], targets[i : i + step])
        for i in range(0, hidden.shape[0], step)
    ]
    return torch.cat(parts) if parts else hidden.new_zeros(0)


def final_hidden(model: nn.Module, **inputs) -> tuple[Tensor, Tensor]:
    """(post-norm last hidden states (B, T, d), the model's own last-position logits (B, V)),
    from one forward that computes logits for the last position only."""
    out = model(**inputs, output_hidden_states=True, logits_to_keep=1, use_cache=False)
    return out.hidden_states[-1], out.logits[:, -1]


def check_head(model: nn.Module, hidden: Tensor, last_logits: Tensor) -> None:
    """Refuse a model whose logits are not `head_logits(final hidden)` (cost: one row)."""
    with torch.no_grad():
        mine = head_logits(model, hidden[:1, -1].detach())
    theirs = last_logits[:1].detach().float()
    tol = 1e-3 * (1 + float(theirs.abs().max()))
    if not torch.allclose(mine, theirs, rtol=1e-3, atol=tol):
        raise RuntimeError(
            f"{type(model).__name__}: lm_head(final hidden state) does not reproduce the model's "
            "logits (an unsupported logit scale or head); chunked scoring would be wrong"
        )


def labelled_nll(
    model: nn.Module, hidden: Tensor, labels: Tensor, budget_mb: float
) -> tuple[Tensor, int]:
    """(summed NLL, count) of labels[:, 1:] predicted from hidden[:, :-1], IGNORE_INDEX skipped."""
    tgt = labels[:, 1:].to(hidden.device)
    keep = tgt != IGNORE_INDEX  # (B, T-1)
    lp = chosen_logprobs(model, hidden[:, :-1][keep], tgt[keep], budget_mb)
    return -lp.sum(), int(keep.sum())


def response_nll(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor,
    budget_mb: float = DEFAULT_LOGITS_BUDGET_MB,
    **forward_kwargs,
) -> tuple[Tensor, int]:
    """(summed NLL over labelled tokens, their count) for a HF causal LM (or PeftModel), with at
    most `budget_mb` of logits alive at a time (module docstring)."""
    hidden, last = final_hidden(
        model, input_ids=input_ids, attention_mask=attention_mask, **forward_kwargs
    )
    check_head(model, hidden, last)
    return labelled_nll(model, hidden, labels, budget_mb)
