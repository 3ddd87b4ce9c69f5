"""Stage `compare`: gather eval result folders into the paper's table, a JSON and a bar chart.

setup (expand globs, read every results.json, refuse duplicates and mismatched protocols
loudly) -> table (WR ↑ | unsafe ↓ | TI ↑ | MC1 | MC2 | Avg, best in bold, plus refusal,
% true, % info, hh-rlhf accuracy) -> save compare.md, compare.json, compare.png atomically.
Rows are comparable only when every system saw the same items, so the per-benchmark limits are
printed under the table and differing limits are flagged.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path

from trinityx.eval.config import CompareConfig
from trinityx.eval.plots import grouped_bars
from trinityx.eval.report import PAPER_COLUMNS, paper_table, summary_row
from trinityx.model.artifacts import ArtifactError, atomic_dir, write_json

log = logging.getLogger(__name__)


def _folders(patterns: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not hits:
            raise FileNotFoundError(f"results: pattern {p!r} matches nothing")
        for h in hits:
            if not (Path(h) / "results.json").is_file():
                if any(ch in p for ch in "*?["):
                    continue  # a glob may sweep in unrelated folders
                raise FileNotFoundError(
                    f"{h}/results.json not found: give folders written by `trinityx eval`"
                )
            if Path(h) not in out:
                out.append(Path(h))
    if not out:
        raise FileNotFoundError(f"no eval result folders found in {patterns}")
    return out


def run(cfg: CompareConfig) -> Path:
    """Write compare.md / compare.json / compare.png for the given eval results; returns folder."""
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    rows, limits, sources = {}, {}, {}
    for folder in _folders(cfg.results):
        res = json.loads((folder / "results.json").read_text())
        name = res["model"]["name"]
        if name in rows:
            raise ValueError(
                f"two results are named {name!r} ({sources[name]} and {folder}); "
                "set `name` in one of the eval configs"
            )
        rows[name], sources[name] = summary_row(res), str(folder)
        limits[name] = {b: v.get("limit") for b, v in res["benchmarks"].items()}
    protocols = {json.dumps(v, sort_keys=True) for v in limits.values()}
    note = (
        ""
        if len(protocols) == 1
        else "\n**Warning: the systems were evaluated on different benchmark limits; rows are not "
        "directly comparable.**\n"
    )
    lines = [
        f"# {cfg.title}",
        "",
        paper_table(rows),
        note,
        "Avg = (WR + TI - unsafe) / 3. WR: AlpacaEval win rate vs text-davinci-003; unsafe: "
        "BeaverTails unsafe %; TI: TruthfulQA % true and informative; MC1/MC2: TruthfulQA "
        "multiple choice (lm-eval); HH acc: hh-rlhf harmless preference accuracy.",
        "",
        "| model | limits | source |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {limits[n]} | {sources[n]} |" for n in rows]
    cols = [c for c, *_ in PAPER_COLUMNS if any(r.get(c) is not None for r in rows.values())]
    with atomic_dir(out) as tmp:
        (tmp / "compare.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_json(tmp / "compare.json", {"rows": rows, "limits": limits, "sources": sources})
        chart = {
            n: {c: v for c, v in r.items() if c in cols and v is not None} for n, r in rows.items()
        }
        grouped_bars(chart, cols, tmp / "compare.png", cfg.title)
    log.info("comparison of %d systems written to %s", len(rows), out)
    return out
