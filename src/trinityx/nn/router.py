"""Routers and gate arithmetic for MoCaE: how router probabilities become expert gates.

Lives here: `combine_gates` (router probabilities x user preferences -> gates g, Eq. gates),
`broadcast_gates` (fit (K,), (B, K) or (B, T, K) gates to an activation's leading dims),
`TokenRouter` (per-token, per-layer Linear), `SequenceRouter` (one decision per prompt from
pooled hidden states) and `router_loss` (soft-label CE + entropy + KL-to-prior regularisers).
Pure torch: no transformers, no I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_EPS = 1e-12


def broadcast_gates(gates: Tensor, ndim: int) -> Tensor:
    """Reshape gates so they broadcast against a tensor with `ndim` dims whose last dim is K.

    (K,) applies to everything; (B, K) is one gate vector per batch row and gains singleton
    dims in the middle, e.g. (B, 1, K) against (B, T, K); (B, T, K) is already per token.
    """
    if gates.dim() == 1 or gates.dim() >= ndim:
        return gates
    mid = (1,) * (ndim - gates.dim())
    return gates.reshape(*gates.shape[:-1], *mid, gates.shape[-1])


def combine_gates(
    probs: Tensor,
    prefs: Tensor | None = None,
    mode: str = "multiply",
    top_k: int | None = None,
) -> Tensor:
    """Turn router probabilities p (..., K) and user preferences pi into gates g (..., K).

    * prefs None -> g = p (the router alone decides).
    * "multiply" -> g = p * pi / sum_k p_k |pi_k|, i.e. g proportional to p (.) pi, the paper's
      preference-conditioned routing. Normalising by |pi| keeps sum_k |g_k| = 1, so a negative
      pi_k *negates* expert k (steers away from it) instead of shrinking the total gate mass.
    * "fixed" -> g = pi broadcast to p's shape: the router is ignored (manual composition).

    top_k keeps the k largest |g_k| per position and rescales them so sum_k |g_k| is unchanged
    (sparse routing without changing the overall update magnitude).
    (B, K) prefs broadcast against (B, T, K) probs per batch row.
    """
    if mode not in ("multiply", "fixed"):
        raise ValueError(f"pref mode must be 'multiply' or 'fixed', got {mode!r}")
    if prefs is None:
        gates = probs
    else:
        pi = broadcast_gates(prefs.to(probs.dtype), probs.dim())
        if mode == "fixed":
            gates = torch.broadcast_tensors(pi, probs)[0]  # router ignored
        else:
            denom = (probs * pi.abs()).sum(-1, keepdim=True).clamp_min(_EPS)  # (..., 1)
            gates = probs * pi / denom  # (..., K)
    if top_k is not None and top_k < gates.shape[-1]:
        mag = gates.abs()  # (..., K)
        idx = mag.topk(top_k, dim=-1).indices
        mask = torch.zeros_like(mag).scatter_(-1, idx, 1.0)
        kept = gates * mask
        ratio = mag.sum(-1, keepdim=True) / kept.abs().sum(-1, keepdim=True).clamp_min(_EPS)
        gates = kept * ratio
    return gates


class TokenRouter(nn.Module):
    """Per-token router for one layer: logits = W_r x + b_r, W_r (K, d_in).

    Small init (std `init_std`, zero bias) so an untrained router starts near uniform routing,
    i.e. near the equal-weight average of the experts rather than an arbitrary single expert.
    Its weight/bias are what `MoCaELinear.attach_router` fuses under the LoRA A rows.
    """

    def __init__(self, d_in: int, num_experts: int, init_std: float = 1e-3) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, num_experts)
        nn.init.normal_(self.proj.weight, std=init_std)
        nn.init.zeros_(self.proj.bias)

    @property
    def weight(self) -> Tensor:
        return self.proj.weight

    @property
    def bias(self) -> Tensor:
        return self.proj.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.to(self.proj.weight.dtype))  # (..., K)


def masked_mean(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Mean of hidden (B, T, d) over real tokens only (padding must not dilute the prompt)."""
    if attention_mask is None:
        return hidden.mean(1)  # (B, d)
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, d)


class SequenceRouter(nn.Module):
    """One routing decision per prompt: masked-mean-pool -> LayerNorm -> MLP -> logits (B, K).

    Used in sequence mode, where the gates are computed once from the prompt and then fixed
    for every layer and every generated token (cheap, and stable across a decode).
    """

    def __init__(
        self, d_in: int, num_experts: int, hidden: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_in)
        self.mlp = nn.Sequential(
            nn.Linear(d_in, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_experts),
        )

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        assert hidden_states.dim() == 3, "expected hidden states (B, T, d)"
        pooled = masked_mean(hidden_states, attention_mask)  # (B, d)
        pooled = pooled.to(self.norm.weight.dtype)
        return self.mlp(self.norm(pooled))  # (B, K)


def router_loss(
    logits: Tensor,
    targets: Tensor,
    prior: Tensor | None = None,
    entropy_weight: float = 0.0,
    kl_weight: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Router training objective L = CE + lambda_H * H + lambda_KL * KL(p_bar || gamma).

    * CE: cross-entropy of softmax(logits) (N, K) against soft which-dimension targets (N, K)
      (int labels (N,) are accepted and one-hot encoded).
    * H: mean per-sample entropy of the routing distribution. A *positive* entropy_weight
      penalises diffuse routing (pushes towards confident, specialised gates); a negative one
      rewards spreading mass across experts.
    * KL: KL(p_bar || gamma) where p_bar is the batch-mean routing distribution and gamma the
      prior (e.g. the task-vector prior of `prior.task_vector_prior`; None -> uniform). It
      regularises the router's overall expert usage towards the prior without forcing any
      individual sample to match it.

    Returns (total, parts); parts holds floats for logging: ce, entropy, kl (raw) and
    entropy_term, kl_term (weighted) so that ce + entropy_term + kl_term == total.
    """
    assert logits.dim() == 2, "expected logits (N, K)"
    k = logits.shape[-1]
    if targets.dim() == 1:
        targets = F.one_hot(targets.long(), k)
    targets = targets.to(logits.dtype)  # (N, K)
    logp = F.log_softmax(logits, dim=-1)  # (N, K)
    p = logp.exp()
    ce = -(targets * logp).sum(-1).mean()
    entropy = -(p * logp).sum(-1).mean()
    p_bar = p.mean(0)  # (K,)
    if prior is None:
        prior = torch.full((k,), 1.0 / k, dtype=logits.dtype, device=logits.device)
    prior = prior.to(logits.dtype)
    kl = (p_bar * (p_bar.clamp_min(_EPS).log() - prior.clamp_min(_EPS).log())).sum()
    ent_term = entropy_weight * entropy
    kl_term = kl_weight * kl
    total = ce + ent_term + kl_term
    parts = {
        "ce": ce.item(),
        "entropy": entropy.item(),
        "kl": kl.item(),
        "entropy_term": entropy_weight * entropy.item(),
        "kl_term": kl_weight * kl.item(),
        "total": total.item(),
    }
    return total, parts
