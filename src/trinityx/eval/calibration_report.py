"""Router calibration report beside a composed artifact: report.md and its PNGs.

What a reader needs to trust "calibrated": which prompts the calibration was fitted on and
which it is reported on, before/after metrics with intervals on the test split, the
reliability diagram with bin counts, class-wise ECE, the confusion matrix and, for token
routing, the gates of every layer.
"""

from __future__ import annotations

from pathlib import Path

from trinityx.eval.plots import layer_ece_plot, reliability_diagram


def _ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci")
    return f"{m[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def calibration_markdown(report: dict, experts: list[str], sets: dict | None = None) -> str:
    """The calibration section of report.md (metrics on the test split, never the fit split)."""
    lines = [f"## Router calibration ({report['routing']} routing, {report['method']} scaling)", ""]
    for name, info in (sets or {}).items():
        lines.append(
            f"- {name}: n={info['n']} {info['labels']} from {', '.join(info['sources'])}"
            f" (prompts sha256 {info['sha256'][:12]})"
        )
    lines += [
        "",
        f"Fitted on {report['n_fit']} prompts, reported on {report['n_test']} others "
        "(95% bootstrap intervals, prompts resampled).",
        "",
        "| | accuracy | ECE | Brier | NLL | class-wise ECE |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("before", "after"):
        m = report[key]
        cw = sum(m["classwise_ece"]) / len(m["classwise_ece"])
        lines.append(
            f"| {key} | {_ci(m, 'accuracy')} | {_ci(m, 'ece')} | {_ci(m, 'brier')} | "
            f"{_ci(m, 'nll')} | {cw:.3f} |"
        )
    t = report["top1"]
    lines += [
        "",
        f"Top-1 (the chosen expert): accuracy {t['accuracy']:.3f}, mean confidence "
        f"{t['mean_confidence']:.3f}, ECE {t['ece']:.3f}.",
    ]
    if "gates_after" in report:
        b, a = report["gates_before"], report["gates_after"]
        lines += [
            "",
            "Per-token gates inside the layers (what the model mixes with), pooled over "
            f"{len(a['ece_per_layer'])} layers: ECE {b['pooled_ece']:.3f} -> "
            f"{a['pooled_ece']:.3f}"
            + (
                f" [{a['pooled_ece_ci'][0]:.3f}, {a['pooled_ece_ci'][1]:.3f}]"
                if "pooled_ece_ci" in a
                else ""
            )
            + f"; token accuracy {b['pooled_accuracy']:.3f} -> {a['pooled_accuracy']:.3f}.",
        ]
        q = report["fitted"].get("temperature_min_median_max")
        if q:
            lines.append(
                f"Layer temperatures min / median / max: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}."
            )
    lines += [
        "",
        "Confusion (rows: true dimension, columns: routed; after calibration):",
        "",
        "| | " + " | ".join(experts) + " |",
        "|---" * (len(experts) + 1) + "|",
    ]
    for name, row in zip(experts, report["after"]["confusion"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(x) for x in row) + " |")
    return "\n".join(lines) + "\n"


def write_calibration_report(
    report: dict, out: Path, experts: list[str], title: str, sets: dict | None = None
) -> str:
    """reliability.png (+ layer_ece.png for token routing) in `out`; returns the markdown."""
    reliability_diagram(report, out / "reliability.png", title)
    md = calibration_markdown(report, experts, sets)
    md += "\n![reliability](reliability.png)\n"
    if "gates_after" in report:
        layer_ece_plot(report, out / "layer_ece.png")
        md += "\n![per-layer gate ECE](layer_ece.png)\n"
    return md
