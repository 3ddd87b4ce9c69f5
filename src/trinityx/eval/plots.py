"""PNG figures saved beside the numbers: reliability diagrams, routing heat maps, HHH bars."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def reliability_diagram(report: dict, path: str | Path, title: str = "router calibration") -> Path:
    """Before / after calibration on the test split: accuracy vs confidence per bin (gap shaded,
    bin counts written on the bars) above a histogram of confidences, with ECE (95% CI) in the
    titles. `report` is model.router_calibration.calibrate_router's output."""
    fig, axes = plt.subplots(
        2, 2, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for col, key in enumerate(("before", "after")):
        ax, hx = axes[0, col], axes[1, col]
        m = report[key]
        bins = m["bins"]
        edges = bins["edges"]
        n = len(edges) - 1
        width = 1.0 / n
        centers = [(edges[i] + edges[i + 1]) / 2 for i in range(n)]
        acc = [a if a is not None else 0.0 for a in bins["accuracy"]]
        conf = [c if c is not None else 0.0 for c in bins["confidence"]]
        counts = [int(c) for c in bins["count"]]
        ax.bar(centers, acc, width=width, edgecolor="black", color="#4c72b0", label="accuracy")
        ax.bar(
            centers,
            [c - a for a, c in zip(acc, conf, strict=True)],
            bottom=acc,
            width=width,
            color="#dd8452",
            alpha=0.5,
            edgecolor="#dd8452",
            label="gap to confidence",
        )
        for x, a, c in zip(centers, acc, counts, strict=True):
            if c:
                ax.text(x, min(a, 0.93) + 0.02, str(c), ha="center", fontsize=6)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ci = m.get("ece_ci")
        ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        label = "uncalibrated" if key == "before" else f"{report['method']} scaling"
        ax.set_title(
            f"{label}: ECE={m['ece']:.3f}{ci_txt}\nacc={m['accuracy']:.3f}  "
            f"Brier={m['brier']:.3f}  NLL={m['nll']:.3f}",
            fontsize=9,
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        hx.bar(centers, counts, width=width, color="#8c8c8c", edgecolor="black")
        hx.set_xlabel("confidence of the chosen expert")
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("prompts")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{title} (test split, n={report['n_test']}; fitted on n={report['n_fit']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def layer_ece_plot(report: dict, path: str | Path, title: str = "per-layer gate ECE") -> Path:
    """Token routing: ECE of each MoCaE layer's per-token gates before / after its calibration."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for key, color in (("gates_before", "#dd8452"), ("gates_after", "#4c72b0")):
        g = report[key]
        ax.plot(
            g["ece_per_layer"],
            color=color,
            lw=1,
            label=f"{key.split('_')[1]} (pooled {g['pooled_ece']:.3f})",
        )
    ax.set_xlabel("MoCaE layer (call order)")
    ax.set_ylabel("ECE (test split)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def routing_heatmaps(
    traces: Sequence[tuple[str, list[list[float]]]], experts: Sequence[str], path: str | Path
) -> Path:
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


def grouped_bars(
    rows: dict[str, dict[str, float]], metrics: Sequence[str], path: str | Path, title: str = ""
) -> Path:
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
