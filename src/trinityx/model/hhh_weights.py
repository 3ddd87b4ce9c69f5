"""User HHH weights pi: validation and batching (the edge where user input meets Eq. gates).

A weight spec is a mapping {"helpful": 1.0, ...} (missing names -> 0), a sequence in expert
order, a (K,) tensor, or None (the router alone decides). A batch takes one spec for all rows or
a list with one spec per request. Negative weights (task-vector negation) need an explicit
opt-in, because a sign typo would otherwise silently steer *away* from a dimension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

WeightSpec = Mapping[str, float] | Sequence[float] | Tensor | None


def resolve_weights(
    names: list[str], hhh: WeightSpec, allow_negative: bool = False, mode: str = "multiply"
) -> Tensor | None:
    """User HHH weights pi as a (K,) float32 tensor in `names` order (None: router alone)."""
    if mode not in ("multiply", "fixed"):
        raise ValueError(f"weight_mode must be 'multiply' or 'fixed', got {mode!r}")
    if hhh is None:
        if mode == "fixed":
            raise ValueError(f"weight_mode='fixed' needs hhh_weights, e.g. {{{names[0]!r}: 1.0}}")
        return None
    if isinstance(hhh, Mapping):
        unknown = sorted(set(hhh) - set(names))
        if unknown:
            raise ValueError(
                f"unknown HHH dimension(s) {unknown}; this model's experts are {names}"
            )
        vals = [float(hhh.get(n, 0.0)) for n in names]
    else:
        vals = [float(v) for v in (hhh.tolist() if isinstance(hhh, Tensor) else hhh)]
        if len(vals) != len(names):
            raise ValueError(f"got {len(vals)} weights for {len(names)} experts {names} (in order)")
    w = torch.tensor(vals, dtype=torch.float32)
    if not torch.isfinite(w).all():
        raise ValueError(f"hhh weights must be finite numbers, got {vals}")
    if (w < 0).any() and not allow_negative:
        neg = [n for n, v in zip(names, vals, strict=True) if v < 0]
        raise ValueError(
            f"negative weight for {neg}: a negative weight subtracts that expert's "
            "task vector (task-vector negation), which must be requested "
            "explicitly with allow_negative=True"
        )
    if (w == 0).all():
        raise ValueError("all hhh weights are zero: give at least one expert a non-zero weight")
    return w


def batch_prefs(
    names: list[str],
    spec,
    B: int,
    mode: str,
    allow_negative: bool,
    device: torch.device | str = "cpu",
) -> Tensor | None:
    """One spec for all rows, or a list with one spec per request -> (B, K) or None."""
    if isinstance(spec, Tensor) and spec.dim() == 2:
        spec = list(spec)  # (B, K) tensor: one row per request
    per_row = (
        isinstance(spec, (list, tuple))
        and len(spec) > 0
        and all(s is None or isinstance(s, (Mapping, list, tuple, Tensor)) for s in spec)
    )
    if not per_row:
        w = resolve_weights(names, spec, allow_negative, mode)
        return None if w is None else w.expand(B, -1).to(device)
    if len(spec) != B:
        raise ValueError(
            f"hhh_weights has {len(spec)} entries for {B} prompts; give one per "
            "prompt or a single spec for all"
        )
    rows = [resolve_weights(names, s, allow_negative, mode) for s in spec]
    if all(r is None for r in rows):
        return None
    ones = torch.ones(len(names))  # "router alone" for a None row in multiply mode
    return torch.stack([ones if r is None else r for r in rows]).to(device)  # (B, K)
