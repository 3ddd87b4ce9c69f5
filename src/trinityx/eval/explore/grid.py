"""The points the explorer sweeps: a simplex grid of user weights, the router alone, the dial.

In multiply mode only the direction of pi matters (g = p * pi / sum p|pi|), so weights on the
simplex (summing to 1) cover every non-negative trade-off; its corners are the single experts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One composition to score: weights pi (None: router alone) and an optional dial tau."""

    name: str
    kind: str  # grid | corner | router | dial
    weights: dict[str, float] | None = None
    tau: float | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "weights": self.weights, "tau": self.tau}


def simplex(names: list[str], steps: int) -> list[dict[str, float]]:
    """Every weight vector with entries i / steps summing to 1, in lexicographic order."""
    out = []
    for combo in itertools.product(range(steps + 1), repeat=len(names)):
        if sum(combo) == steps:
            out.append({n: c / steps for n, c in zip(names, combo, strict=True)})
    return out


def sweep_points(
    names: list[str], steps: int, router_only: bool, taus: list[float], dial: bool
) -> list[Point]:
    """Router alone first (the reference), then the grid (corners marked), then the dial."""
    pts = [Point("router", "router")] if router_only else []
    for w in simplex(names, steps):
        corner = max(w.values()) == 1.0
        label = "-".join(f"{n[:4]}{w[n]:.2f}" for n in names)
        name = f"only-{next(n for n in names if w[n] == 1.0)}" if corner else label
        pts.append(Point(name, "corner" if corner else "grid", w))
    if dial:
        pts += [Point(f"dial-{t:.2f}", "dial", None, float(t)) for t in taus]
    return pts
