"""Tables and charts of evaluation results, shared by the eval and compare stages.

The headline table keeps the paper's layout: WR ↑ | unsafe ↓ | TI ↑ | MC1 | MC2 | Avg, with
Avg = (WR + TI - unsafe) / 3, followed by secondary columns (refusal, % true, % info, hh-rlhf
accuracy). Everything reads the `results.json` structure the eval stage writes:
{"model": {...}, "benchmarks": {name: {"metrics": {...}, "seconds": ...}}, "overall": x}.
"""

from __future__ import annotations

import math
from pathlib import Path

from trinityx.eval.plots import grouped_bars

# (column, benchmark, metric key, higher is better); benchmark None = top-level key
PAPER_COLUMNS = [
    ("WR ↑", "alpaca_eval", "win_rate", True),
    ("unsafe ↓", "beavertails", "unsafe_rate", False),
    ("TI ↑", "truthfulqa_gen", "ti", True),
    ("MC1", "truthfulqa_mc", "mc1", True),
    ("MC2", "truthfulqa_mc", "mc2", True),
    ("Avg", None, "overall", True),
]
EXTRA_COLUMNS = [
    ("LC WR", "alpaca_eval", "lc_win_rate", True),
    ("refusal", "beavertails", "refusal_rate", None),
    ("% true", "truthfulqa_gen", "truthful", True),
    ("% info", "truthfulqa_gen", "informative", True),
    ("HH acc", "hh_harmless", "accuracy", True),
    ("SPARD acc", "spard_pref", "accuracy", True),
    ("refuse harmful ↑", "refusal_harmful", "refusal_rate", True),
    ("over-refuse ↓", "over_refusal", "over_refusal_rate", False),
    ("loops ↓", "alpaca_eval", "loop_rate", False),
    ("HHH ↑", None, "hhh_score", True),
]


def summary_row(results: dict) -> dict[str, float | None]:
    """Column -> value (None when that benchmark did not run)."""
    row: dict[str, float | None] = {}
    for col, bench, key, _ in PAPER_COLUMNS + EXTRA_COLUMNS:
        if bench is None:
            row[col] = results.get(key)
        else:
            row[col] = results.get("benchmarks", {}).get(bench, {}).get("metrics", {}).get(key)
    return row


def fmt(v: float | None) -> str:
    """One decimal, or an em dash for a missing (None / NaN) value: every report table's cell."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def paper_table(rows: dict[str, dict[str, float | None]], extras: bool = True) -> str:
    """Markdown table, one row per system; the best value of each ranked column in bold."""
    cols = PAPER_COLUMNS + (EXTRA_COLUMNS if extras else [])
    cols = [c for c in cols if any(r.get(c[0]) is not None for r in rows.values())] or cols[:6]
    best = {}
    for col, _, _, up in cols:
        vals = [r[col] for r in rows.values() if r.get(col) is not None]
        if up is not None and len(vals) > 1:
            best[col] = max(vals) if up else min(vals)
    lines = ["| model | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = []
        for col, *_ in cols:
            s = fmt(r.get(col))
            cells.append(f"**{s}**" if col in best and r.get(col) == best[col] else s)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci")
    return f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""


def eval_markdown(results: dict) -> str:
    """report.md of one evaluation: headline row, per-benchmark metrics with 95% CIs, timings."""
    model = results["model"]
    out = [
        f"# Evaluation: {model['name']}",
        "",
        f"spec `{model['spec']}`, fingerprint `{model['fingerprint'][:16]}`, "
        f"judges: {results.get('judges', {})}",
        "",
        paper_table({model["name"]: summary_row(results)}),
        "## Benchmarks",
        "",
    ]
    for name, b in results["benchmarks"].items():
        m = b["metrics"]
        out.append(
            f"### {name} (n={m.get('n')}, {b['seconds']:.1f} s, "
            f"{b['n_computed']}/{b['n_requests']} requests computed, rest cached)"
        )
        out.append("")
        for k, v in m.items():
            if isinstance(v, float):
                out.append(f"- {k}: {v:.2f}{_ci(m, k)}")
        cats = m.get("per_category", {})
        if cats and not isinstance(next(iter(cats.values())), dict):  # refusal sets: {cat: %}
            out += ["", "| category | % |", "|---|---:|"]
            out += [f"| {c} | {v:.1f} |" for c, v in cats.items()]
        elif cats:
            out += ["", "| category | n | unsafe % | refusal % |", "|---|---:|---:|---:|"]
            out += [
                f"| {c} | {v['n']} | {v['unsafe_rate']:.1f} | {v['refusal_rate']:.1f} |"
                for c, v in m["per_category"].items()
            ]
        out.append("")
    if results.get("overall") is not None:
        out.append(f"**Overall (WR + TI - unsafe) / 3 = {results['overall']:.2f}**\n")
    if results.get("hhh_score") is not None:
        out.append(f"**HHH (WR + TI - unsafe - over-refusal) / 3 = {results['hhh_score']:.2f}**\n")
    return "\n".join(out)


def eval_charts(results: dict, folder: Path) -> list[Path]:
    """headline.png (the paper columns) and, with BeaverTails, beavertails_categories.png."""
    name = results["model"]["name"]
    row = {k: v for k, v in summary_row(results).items() if v is not None}
    paths = []
    if row:
        paths.append(
            grouped_bars(
                {name: row}, list(row), folder / "headline.png", f"{name}: HHH metrics (%)"
            )
        )
    cats = results["benchmarks"].get("beavertails", {}).get("metrics", {}).get("per_category")
    if cats:
        rows = {
            "unsafe %": {c: v["unsafe_rate"] for c, v in cats.items()},
            "refusal %": {c: v["refusal_rate"] for c, v in cats.items()},
        }
        short = [c[:18] for c in cats]
        rows = {k: dict(zip(short, v.values(), strict=True)) for k, v in rows.items()}
        paths.append(
            grouped_bars(
                rows,
                short,
                folder / "beavertails_categories.png",
                f"{name}: BeaverTails by category",
            )
        )
    return paths
