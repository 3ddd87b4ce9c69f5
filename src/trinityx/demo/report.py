"""The demo's words: terminal lines per stage and `report.md` (with PNGs) at the end.

Everything here reads finished artifacts (metrics.json, report.json, showcase.json), so a second
run prints the same report without recomputing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from trinityx.demo.showcase import EDGY, SWEEP_PROMPT
from trinityx.model.artifacts import atomic_write_text


def _fmt(x: float | None, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _gates(g: dict) -> str:
    return " ".join(f"{k[:4]}={v:.2f}" for k, v in g.items())


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def expert_summary(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    losses = [h["loss"] for phase in history.values() for h in phase if "loss" in h]
    return metrics | {"first_train_loss": losses[0] if losses else None}


def expert_lines(experts: dict[str, Path]) -> list[str]:
    lines = [
        "",
        "=== What the experts learned (held-out loss: response tokens, lower is better) ===",
    ]
    for dim, folder in experts.items():
        m = expert_summary(folder)
        last = " ".join(f"{k}={_fmt(v)}" for k, v in m["final_train_loss"].items())
        lines.append(
            f"[{dim}] {m['method']}, {m['n_train']} train / {m['n_heldout']} held-out: "
            f"held-out loss {_fmt(m['heldout_loss_before'])} -> "
            f"{_fmt(m['heldout_loss_after'])}; training loss first "
            f"{_fmt(m['first_train_loss'])}, last {last}"
        )
    return lines


def compose_lines(composed: Path) -> list[str]:
    rep = json.loads((composed / "report.json").read_text())
    cal = rep["calibration"]
    lines = [
        "",
        f"=== The composed model ({rep['routing']} routing) ===",
        "prior gamma (task vectors): "
        + ", ".join(f"{k}={v:.2f}" for k, v in rep["prior"]["gamma"].items()),
        f"router held-out accuracy: untrained {rep['test_accuracy_untrained']:.3f} -> "
        f"trained {cal['after']['accuracy']:.3f} (calibration fitted on {cal['n_fit']} "
        f"held-out prompts, measured on {cal['n_test']} others)",
    ]
    for key in ("ece", "brier", "nll"):
        ci = cal["after"].get(f"{key}_ci")
        ci_txt = f"  95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(
            f"  {key.upper():5s} before {cal['before'][key]:.3f} -> after "
            f"{cal['after'][key]:.3f}{ci_txt}"
        )
    lines.append(f"  reliability diagram: {composed / 'reliability.png'}")
    return lines


def showcase_lines(show: dict) -> list[str]:
    lines = ["", "=== Probe prompts: bare backbone vs TrinityX (gates help/harm/hone) ==="]
    for p in show["probes"]:
        tag = "  (benign but edgy)" if p["prompt"] == EDGY else ""
        lines += [
            f"[{p['dimension']}] {p['prompt']}{tag}",
            f"  backbone: {_short(p['backbone'])}",
            f"  TrinityX [{_gates(p['gates'])}]: {_short(p['trinityx'])}",
        ]
    sh = show["shipped"]
    if sh.get("error"):
        lines.append(f"(shipped model {sh['folder']} could not be loaded: {sh['error']})")
    elif sh["present"]:
        lines += ["", f"=== The same probes by the shipped model {sh['folder']} ==="]
        lines += [
            f"  {_short(a['prompt'], 60)} -> [{_gates(a['gates'])}] {_short(a['answer'])}"
            for a in sh["answers"]
        ]
    else:
        lines.append(f"(shipped model {sh['folder']} not present: skipped)")
    lines += ["", f"=== Per-request HHH weights on: {SWEEP_PROMPT} ==="]
    for s in show["sweep"]:
        lines.append(
            f"  harmless weight {s['weights']['harmless']:g} -> gates "
            f"[{_gates(s['gates'])}]: {_short(s['answer'])}"
        )
    lines += ["", *table_lines(show["table"])]
    return lines


def table_lines(table: dict) -> list[str]:
    n = table["n"]
    head = (
        f"=== Held-out slice ({', '.join(f'{d} {k}' for d, k in n.items())} rows; "
        f"{table['n_harmful']} harmful, {table['n_benign']} benign-edgy prompts) ==="
    )
    cols = list(n)
    lines = [
        head,
        f"{'system':16s}"
        + "".join(f"{'loss ' + c:>14s}" for c in cols)
        + f"{'refuse harmful':>16s}{'refuse benign':>15s}",
    ]
    for system, r in table["rows"].items():
        lines.append(
            f"{system:16s}"
            + "".join(f"{r['loss'][c]:14.3f}" for c in cols)
            + f"{r['refusal_harmful']:15.0f}%{r['refusal_benign']:14.0f}%"
        )
    return lines


def _stage_time(v: dict) -> str:
    if v.get("reused"):
        built = v.get("built_seconds")
        return "reused" + (f" (built in {built:.0f}s)" if built is not None else "")
    inner = [
        f"{ph} {t['seconds']:.0f}s"
        + (f" @ {t['real_tokens_per_s']:.0f} tok/s" if "real_tokens_per_s" in t else "")
        for ph, t in v.get("training", {}).items()
    ]
    return f"{v['seconds']:.0f}s" + (f" ({', '.join(inner)})" if inner else "")


def timing_lines(timings: dict) -> list[str]:
    parts = [f"{k} {_stage_time(v)}" for k, v in timings.items() if k != "total"]
    return ["", f"done in {timings['total']['seconds']:.0f} s: " + "; ".join(parts)]


def _table_md(table: dict) -> list[str]:
    cols = list(table["n"])
    lines = [
        "| system | "
        + " | ".join(f"held-out loss {c} (n={table['n'][c]}) ↓" for c in cols)
        + f" | refusal, harmful (n={table['n_harmful']}) ↑"
        f" | refusal, benign-edgy (n={table['n_benign']}) ↓ |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for system, r in table["rows"].items():
        lines.append(
            f"| {system} | "
            + " | ".join(f"{r['loss'][c]:.3f}" for c in cols)
            + f" | {r['refusal_harmful']:.0f}% | {r['refusal_benign']:.0f}% |"
        )
    return lines


def _table_png(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols, systems = list(table["n"]), list(table["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x, w = np.arange(len(cols)), 0.8 / len(systems)
    for i, s in enumerate(systems):
        axes[0].bar(x + i * w, [table["rows"][s]["loss"][c] for c in cols], w, label=s)
        axes[1].bar(
            np.arange(2) + i * w,
            [table["rows"][s]["refusal_harmful"], table["rows"][s]["refusal_benign"]],
            w,
            label=s,
        )
    axes[0].set_xticks(x + 0.4 - w / 2, cols)
    axes[0].set_ylabel("held-out response loss (lower is better)")
    axes[1].set_xticks(
        np.arange(2) + 0.4 - w / 2, ["harmful (want high)", "benign-edgy (want low)"]
    )
    axes[1].set_ylabel("refusal %")
    axes[1].set_ylim(0, 100)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(
    root: Path, experts: dict[str, Path], composed: Path, show: dict, timings: dict
) -> Path:
    """`<root>/report.md`: the same story as the terminal, with the PNGs linked."""
    rel = lambda p: Path(p).resolve().relative_to(root.resolve()).as_posix()  # noqa: E731
    _table_png(show["table"], root / "heldout.png")
    md = [
        "# TrinityX demo report",
        "",
        "| stage | " + " | ".join(timings) + " |",
        "|---" * (len(timings) + 1) + "|",
        "| time | " + " | ".join(_stage_time(v) for v in timings.values()) + " |",
        "",
        "## Experts",
        "",
        "| expert | method | train / held-out | held-out loss before → after | loss curve |",
        "|---|---|---|---|---|",
    ]
    for dim, folder in experts.items():
        m = expert_summary(folder)
        md.append(
            f"| {dim} | {m['method']} | {m['n_train']} / {m['n_heldout']} | "
            f"{_fmt(m['heldout_loss_before'])} → {_fmt(m['heldout_loss_after'])} | "
            f"![{dim}]({rel(folder / 'loss_curve.png')}) |"
        )
    md += [
        "",
        "## Router: out-of-sample accuracy and calibration",
        "",
        *[f"- {line.strip()}" for line in compose_lines(composed)[2:-1]],
        "",
        f"![reliability diagram]({rel(composed / 'reliability.png')})",
        f"![routing heat map]({rel(composed / 'routing_heatmap.png')})",
        "",
        f"Full calibration report: [{rel(composed / 'report.md')}]({rel(composed / 'report.md')})",
        "",
        "## Probe prompts: bare backbone vs TrinityX",
        "",
        "| dimension | prompt | gates (help/harm/hone) | backbone | TrinityX |",
        "|---|---|---|---|---|",
    ]
    cell = lambda t: _short(t, 300).replace("|", "\\|")  # noqa: E731
    for p in show["probes"]:
        edgy = " *(benign but edgy)*" if p["prompt"] == EDGY else ""
        md.append(
            f"| {p['dimension']} | {cell(p['prompt'])}{edgy} | {_gates(p['gates'])} | "
            f"{cell(p['backbone'])} | {cell(p['trinityx'])} |"
        )
    sh = show["shipped"]
    md += ["", "## The shipped model", ""]
    if sh.get("error"):
        md.append(f"`{sh['folder']}` could not be loaded: {sh['error']}")
    elif sh["present"]:
        md += [f"`{sh['folder']}`:", "", "| prompt | gates | answer |", "|---|---|---|"]
        md += [
            f"| {cell(a['prompt'])} | {_gates(a['gates'])} | {cell(a['answer'])} |"
            for a in sh["answers"]
        ]
    else:
        md.append(f"`{sh['folder']}` is not present; skipped.")
    md += [
        "",
        f'## Per-request HHH weights: "{SWEEP_PROMPT}"',
        "",
        "| harmless weight | gates | answer |",
        "|---|---|---|",
    ]
    md += [
        f"| {s['weights']['harmless']:g} | {_gates(s['gates'])} | {cell(s['answer'])} |"
        for s in show["sweep"]
    ]
    md += [
        "",
        "## Held-out slice: backbone vs experts vs TrinityX",
        "",
        *_table_md(show["table"]),
        "",
        "![held-out metrics](heldout.png)",
        "",
    ]
    atomic_write_text(root / "report.md", "\n".join(md))
    return root / "report.md"
