"""Task-vector prior gamma over experts, computed from the LoRA factors alone.

The paper's router prior: the task vector of expert k is its weight update over all adapted
layers, tau_k = concat_l(Delta W_k^l) with Delta W_k^l = s_k B_k^l A_k^l; then
gamma = softmax(cos(tau_k, tau_ref) / T). Every inner product is taken in low-rank form
(`lowrank_inner`), so no d_out x d_in matrix is ever materialised. Pure torch, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

Factors = tuple[Tensor, Tensor, float]  # (A (r, d_in), B (d_out, r), s)
Reference = str | Sequence[Factors | Mapping[str, Factors]] | None


def lowrank_inner(A1: Tensor, B1: Tensor, s1: float, A2: Tensor, B2: Tensor, s2: float) -> Tensor:
    """Frobenius <s1 B1 A1, s2 B2 A2> without forming either product.

    <B1 A1, B2 A2>_F = tr(A1^T B1^T B2 A2) = sum_ij (B1^T B2)_ij (A1 A2^T)_ij, which costs
    O(r1 r2 (d_in + d_out)) instead of O(d_out d_in r). Computed in float64 for stability.
    """
    bb = B1.double().T @ B2.double()  # (r1, r2)
    aa = A1.double() @ A2.double().T  # (r1, r2)
    return float(s1) * float(s2) * (bb * aa).sum()


def _ref_factors(ref: Factors | Mapping[str, Factors]) -> Factors:
    if isinstance(ref, Mapping):
        assert len(ref) == 1, "a per-layer reference mapping must hold exactly one entry"
        return next(iter(ref.values()))
    return ref


def task_vector_cosines(
    layers: Sequence[Mapping[str, Factors]],
    reference: Reference = "mean",
    names: Sequence[str] | None = None,
) -> Tensor:
    """cos(tau_k, tau_ref) for each expert k (K,), summing inner products over layers.

    reference: "mean" -> tau_ref = (1/K) sum_k tau_k (inner products by linearity from the
    expert Gram matrix G_kl = <tau_k, tau_l>); or one low-rank (A, B, s) (or a single-entry
    mapping) per layer, e.g. a multi-task LoRA trained on all dimensions at once.
    names fixes the expert order (default: the first layer's key order).
    """
    names = list(names) if names is not None else list(layers[0].keys())
    K = len(names)
    gram = torch.zeros(K, K, dtype=torch.float64)  # (K, K)
    for layer in layers:
        f = [layer[n] for n in names]
        for i in range(K):
            for j in range(i, K):
                v = lowrank_inner(*f[i], *f[j]).cpu()
                gram[i, j] += v
                if j != i:
                    gram[j, i] += v
    sq = gram.diagonal()  # (K,) ||tau_k||^2
    if isinstance(reference, str):
        if reference != "mean":
            raise ValueError(f"unknown reference {reference!r}; use 'mean' or per-layer factors")
        dot = gram.mean(1)  # (K,) <tau_k, mean_l tau_l>
        ref_sq = gram.mean()  # ||mean tau||^2
    else:
        assert len(reference) == len(layers), "need one reference factor set per layer"
        dot = torch.zeros(K, dtype=torch.float64)
        ref_sq = torch.zeros((), dtype=torch.float64)
        for layer, ref in zip(layers, reference, strict=True):
            r = _ref_factors(ref)
            ref_sq += lowrank_inner(*r, *r).cpu()
            for i, n in enumerate(names):
                dot[i] += lowrank_inner(*layer[n], *r).cpu()
    denom = (sq.clamp_min(0).sqrt() * ref_sq.clamp_min(0).sqrt()).clamp_min(1e-30)
    return (dot / denom).float()


def task_vector_prior(
    layers: Sequence[Mapping[str, Factors]],
    reference: Reference = "mean",
    temperature: float = 1.0,
    names: Sequence[str] | None = None,
) -> Tensor:
    """gamma = softmax(cos(tau_k, tau_ref) / temperature) (K,); reference None -> uniform.

    Lower temperature sharpens the prior towards the expert most aligned with the reference.
    """
    if reference is None:
        K = len(names) if names is not None else len(layers[0])
        return torch.full((K,), 1.0 / K)
    cos = task_vector_cosines(layers, reference, names)
    return torch.softmax(cos / temperature, dim=-1)
