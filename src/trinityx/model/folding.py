"""Folded weights: one gate vector g (K,) merged into the frozen W0 for the length of a call.

When every row of a call shares one g (sequence routing at batch 1, `weight_mode="fixed"`,
routing "none" with one preference), Eq. MoCaE collapses to one plain linear per target,

    W = W0 + sum_k g_k s_k B_k A_k   (= W0 + (B_cat diag(g_r)) A_cat, accumulated in float32),

so decoding runs the bare backbone's kernels, with no LoRA matmuls and no Python per MoCaE layer.
`folded_view` swaps each MoCaELinear for a new nn.Linear holding W and swaps the original
module back on exit. W0 itself is never written, so the restore is bit-exact (nothing is
subtracted back out). The cost is one rank-R matmul per target and one weight copy per target
held for the call (SmolLM2-135M: ~460 ms CPU and +400 MB), so `generate` folds only when the
call is long enough to pay it back (FOLD_MIN_NEW_TOKENS). `export.merged_view` and the
exports use the same `merged_linear`, so a folded generation and a merged export compute the
same weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from trinityx.nn.mocae import MoCaELinear

# Auto policy of `generate(fold=None)`. Measured on SmolLM2-135M, 3 rank-8 experts on all 7
# targets, CPU, 1 thread: one fold costs ~460 ms CPU (~6 one-token forwards) and +400 MB held
# for the call, and saves ~18 ms per batch-1 decode step, so it pays from ~25 new tokens on.
FOLD_MIN_NEW_TOKENS = 32


def shared_gates(gates: Tensor | None) -> Tensor | None:
    """The single gate vector (K,) when every row of `gates` (K,) / (B, K) is the same, else None.

    Per-token gates (B, T, K) never fold: they change with every position.
    """
    if gates is None or gates.dim() > 2:
        return None
    if gates.dim() == 1:
        return gates
    return gates[0] if bool((gates == gates[:1]).all()) else None


def foldable(layers: Mapping[str, MoCaELinear]) -> bool:
    """Folding needs a plain nn.Linear under every MoCaE layer (no quantised base layers)."""
    return all(type(layer.base_layer) is nn.Linear for layer in layers.values())


@torch.no_grad()
def merged_linear(layer: MoCaELinear, g: Tensor) -> nn.Linear:
    """A new nn.Linear with W0 + sum_k g_k s_k B_k A_k, accumulated in float32.

    Layers whose gates are all zero return their own base layer (shared, never written).
    """
    base = layer.base_layer
    w = base.weight
    R = layer.total_rank
    if R == 0:
        return base
    a, b_g, g_r = layer.gated_factors(g)  # (R, d_in), (d_out, R) = B diag(g_r), (R,)
    if not bool(g_r.any()):
        return base
    if w.dtype == torch.float32:
        merged = torch.addmm(w, b_g, a)  # (d_out, d_in), a fresh tensor
    else:
        merged = w.float().addmm_(b_g, a).to(w.dtype)
    out = torch.nn.utils.skip_init(
        nn.Linear,
        base.in_features,
        base.out_features,
        bias=base.bias is not None,
        device=w.device,
        dtype=w.dtype,
    )
    out.weight = nn.Parameter(merged, requires_grad=False)
    if base.bias is not None:
        out.bias = base.bias  # shared: the fold never touches the bias
    return out


@contextlib.contextmanager
def folded_view(
    model: nn.Module, layers: Mapping[str, MoCaELinear], g: Tensor
) -> Iterator[nn.Module]:
    """Swap every MoCaELinear in `model` for `merged_linear(layer, g)`; originals back on exit.

    `layers` maps full module names (as `model.named_modules` gives them) to the MoCaE layers.
    The MoCaE modules, their base layers and buffers are not modified, so after the context
    every tensor of the model is the very same object with the same bytes as before.
    """
    swapped: list[tuple[str, MoCaELinear]] = []
    try:
        for name, layer in layers.items():
            model.set_submodule(name, merged_linear(layer, g))
            swapped.append((name, layer))
        yield model
    finally:
        for name, layer in swapped:
            model.set_submodule(name, layer)
