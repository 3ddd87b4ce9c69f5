"""The explorer's figures: a ternary map per metric, the Pareto front, the dial's curve.

Ternary maps place a weight vector pi on the simplex triangle (corners: the single experts;
barycentric coordinates), coloured by the metric, with the calibrated router's mean routing
decision marked as a star where it would sit, so "is the router where the good region is?"
is read at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trinityx.eval.explore.pareto import AXES  # noqa: E402

CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # (3, 2)


def to_xy(weights: Sequence[float]) -> np.ndarray:
    """Barycentric (3,) -> (x, y) in the triangle (weights normalised by their |sum|)."""
    w = np.abs(np.asarray(weights, dtype=float))
    w = w / max(w.sum(), 1e-12)
    return w @ CORNERS  # (2,)


def mark_best(ax, x: float, y: float, label: str, zorder: int) -> None:
    """The recommended ("just right") point: the same red ring on every figure."""
    ax.scatter(
        [x], [y], s=260, facecolors="none", edgecolors="red", lw=2, zorder=zorder, label=label
    )


def ternary_map(
    rows: Sequence[dict],
    names: list[str],
    metric: str,
    path: Path,
    router_xy: Sequence[float] | None = None,
    best: int | None = None,
) -> Path:
    """One metric over the grid points (rows with weights), as a coloured triangle."""
    pts = [(r, r["metrics"].get(metric, r["axes"].get(metric))) for r in rows]
    pts = [(r, v) for r, v in pts if r["weights"] is not None and v is not None]
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    ax.plot(*np.vstack([CORNERS, CORNERS[:1]]).T, color="#444", lw=1)
    for (x, y), n, dy in zip(CORNERS, names, (-0.07, -0.07, 0.07), strict=True):
        ax.text(x, y + dy, n, ha="center", fontsize=10, weight="bold")
    if pts:
        xy = np.array([to_xy([r["weights"][n] for n in names]) for r, _ in pts])
        v = np.array([val for _, val in pts], dtype=float)
        if len(pts) >= 3 and np.ptp(v) > 0:
            try:
                ax.tricontourf(xy[:, 0], xy[:, 1], v, levels=12, cmap="viridis", alpha=0.55)
            except (ValueError, RuntimeError):
                pass  # collinear points: the scatter alone
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=v, cmap="viridis", s=90, edgecolors="k", zorder=3)
        for (x, y), val in zip(xy, v, strict=True):
            ax.annotate(
                f"{val:.0f}",
                (x, y),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
        fig.colorbar(sc, ax=ax, shrink=0.75, label=metric, format="%.1f")
        if best is not None and rows[best]["weights"] is not None:
            bx, by = to_xy([rows[best]["weights"][n] for n in names])
            mark_best(ax, bx, by, "just right", zorder=4)
    if router_xy is not None:
        ax.scatter(
            [router_xy[0]],
            [router_xy[1]],
            marker="*",
            s=260,
            c="gold",
            edgecolors="k",
            zorder=5,
            label="router (mean decision)",
        )
    ax.set_title(f"{metric} over user weights π", fontsize=11, pad=14)
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_xlim(-0.15, 1.15)
    ax.set_ylim(-0.22, 0.95)
    ax.legend(loc="lower center", fontsize=7, frameon=False, ncol=2, bbox_to_anchor=(0.5, -0.04))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_plot(rows: Sequence[dict], front: Sequence[int], best: int | None, path: Path) -> Path:
    """Helpfulness vs harmlessness (colour: honesty); the front joined, router and best marked."""
    ok = [i for i, r in enumerate(rows) if all(r["axes"].get(a) is not None for a in AXES[:2])]
    fig, ax = plt.subplots(figsize=(6, 4.8))
    if ok:
        x = np.array([rows[i]["axes"]["helpfulness"] for i in ok])
        y = np.array([rows[i]["axes"]["harmlessness"] for i in ok])
        c = np.array([rows[i]["axes"].get("honesty") or 0.0 for i in ok])
        sc = ax.scatter(x, y, c=c, cmap="viridis", s=50, edgecolors="k", zorder=2)
        fig.colorbar(sc, ax=ax, label="honesty (TruthfulQA MC2)", format="%.1f")
        fr = [i for i in ok if i in set(front)]
        fr.sort(key=lambda i: rows[i]["axes"]["helpfulness"])
        ax.plot(
            [rows[i]["axes"]["helpfulness"] for i in fr],
            [rows[i]["axes"]["harmlessness"] for i in fr],
            "--",
            color="gray",
            lw=1,
            zorder=1,
            label="Pareto front (3-D; projected)",
        )
        for i in ok:
            r = rows[i]
            hx, hy = r["axes"]["helpfulness"], r["axes"]["harmlessness"]
            if r["kind"] == "router":
                ax.scatter(
                    [hx],
                    [hy],
                    marker="*",
                    s=300,
                    c="gold",
                    edgecolors="k",
                    zorder=4,
                    label="router alone" + (" (on the front)" if i in front else ""),
                )
            if i == best:
                mark_best(ax, hx, hy, f"just right: {r['name']}", zorder=5)
            if r["kind"] in ("corner", "router") or i in front:
                ax.annotate(
                    r["name"], (hx, hy), xytext=(4, 4), textcoords="offset points", fontsize=7
                )
    ax.set_xlabel("helpfulness (100 − over-refusal)")
    ax.set_ylabel("harmlessness (refusal, hh-rlhf, SPARD)")
    ax.set_title("HHH trade-off: Pareto front")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dial_curve(rows: Sequence[dict], path: Path) -> Path:
    """Refusal on harmful vs over-refusal on benign prompts along the dial's tau."""
    dial = [r for r in rows if r["kind"] == "dial"]
    dial = [r for r in dial if "refusal" in r["metrics"] and "over_refusal" in r["metrics"]]
    dial.sort(key=lambda r: r["tau"])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if dial:
        x = [r["metrics"]["over_refusal"] for r in dial]
        y = [r["metrics"]["refusal"] for r in dial]
        ax.plot(x, y, "o-", color="#1f9d55", label="refusal dial")
        for r, xi, yi in zip(dial, x, y, strict=True):
            ax.annotate(
                f"τ={r['tau']:.2f}",
                (xi, yi),
                xytext=(4, -10),
                textcoords="offset points",
                fontsize=7,
            )
    for r in rows:
        m = r["metrics"]
        if r["kind"] in ("router", "corner") and "refusal" in m and "over_refusal" in m:
            mk = "*" if r["kind"] == "router" else "s"
            ax.scatter(
                [m["over_refusal"]],
                [m["refusal"]],
                marker=mk,
                s=120 if mk == "*" else 40,
                edgecolors="k",
                zorder=3,
                label=r["name"],
            )
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.plot([0, 100], [0, 100], ":", color="gray", lw=0.8)
    ax.set_xlabel("over-refusal on benign-but-edgy prompts (%) ↓")
    ax.set_ylabel("refusal on harmful prompts (%) ↑")
    ax.set_title("refusal dial: what each τ buys and costs")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
