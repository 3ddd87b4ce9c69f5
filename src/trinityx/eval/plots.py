"""PNG figures saved beside the numbers: reliability diagrams, routing heat maps, HHH bars."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def reliability_diagram(report: dict, path: str | Path, title: str = "router calibration") -> Path:
    """Two panels (before / after calibration): accuracy vs confidence per bin, gap shaded, with
    ECE in the panel title. `report` is model.router_training.calibrate's output."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, key in zip(axes, ("before", "after"), strict=True):
        bins = report[f"bins_{key}"]
        edges = bins["edges"]
        n = len(edges) - 1
        width = 1.0 / n
        centers = [(edges[i] + edges[i + 1]) / 2 for i in range(n)]
        acc = [a if a is not None else 0.0 for a in bins["accuracy"]]
        conf = [c if c is not None else 0.0 for c in bins["confidence"]]
        ax.bar(centers, acc, width=width, edgecolor="black", color="#4c72b0", label="accuracy")
        ax.bar(centers, [c - a for a, c in zip(acc, conf, strict=True)], bottom=acc, width=width,
               color="#dd8452", alpha=0.5, edgecolor="#dd8452", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        m = report[key]
        label = "uncalibrated" if key == "before" else f"{report['method']} (T={report['temperature']:.2f})"
        ax.set_title(f"{label}\nECE={m['ece']:.3f}  Brier={m['brier']:.3f}  NLL={m['nll']:.3f}",
                     fontsize=9)
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{title} (n={report['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def routing_heatmaps(traces: Sequence[tuple[str, list[list[float]]]], experts: Sequence[str],
                     path: str | Path) -> Path:
    """One heat map per prompt: layer (rows) x expert (cols) mean gate over the prompt's tokens."""
    fig, axes = plt.subplots(1, len(traces), figsize=(3.2 * len(traces), 4.5), squeeze=False)
    for ax, (title, grid) in zip(axes[0], traces, strict=True):
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(experts)), experts, rotation=30, fontsize=8)
        ax.set_ylabel("MoCaE layer")
        ax.set_title("\n".join(textwrap.wrap(title, 30)[:3]), fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="gate")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def grouped_bars(rows: dict[str, dict[str, float]], metrics: Sequence[str], path: str | Path,
                 title: str = "") -> Path:
    """Systems (groups) x metrics (bars): e.g. HHH scores or latency ratios."""
    import numpy as np

    names = list(rows)
    x = np.arange(len(metrics))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + 0.4 * len(names)), 4))
    for i, n in enumerate(names):
        vals = [rows[n].get(m, float("nan")) for m in metrics]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=n)
    ax.set_xticks(x, metrics)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
