"""Ship the experiment's chosen TrinityX model as a small, self-describing folder.

The composed artifact is re-saved with its experts in bf16 (a SmolLM2 expert: 2.4M LoRA
parameters, 4.9 MB), next to a model card (README.md) that gives the data and sizes of every
expert, the router's out-of-sample calibration and the experiment's figures for TrinityX and the
base, so `TrinityXModel.from_pretrained(folder)`, `trinityx serve folder` and the demo use it
with no training, and a reader can see what it is without opening JSON.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
import yaml

from trinityx.model.artifacts import atomic_write_text

log = logging.getLogger(__name__)

SIZE_LIMIT_MB = 20.0
CARRIED = ("report.md", "report.json", "reliability.png", "routing_heatmap.png")
EXPERT_META = ("metrics.json", "config.yaml")
"""Kept beside each shipped expert, so a later run that reuses it (experts.<dim>.path) can still
say what it was trained on."""


def _expert_rows(experts: dict[str, Path]) -> list[str]:
    """One card row per expert from its artifact (config.yaml + metrics.json)."""
    rows = [
        "| expert | method | training data | examples | epochs / DPO steps | LoRA | starter held-out loss* |",
        "|---|---|---|---:|---|---|---|",
    ]
    for name, folder in experts.items():
        if not (folder / "metrics.json").is_file() or not (folder / "config.yaml").is_file():
            rows.append(
                f"| {name} | reused adapter ({folder}), trained before this run | — | — "
                "| — | — | — |"
            )
            continue
        m = json.loads((folder / "metrics.json").read_text())
        c = yaml.safe_load((folder / "config.yaml").read_text())
        data = ", ".join(
            f"{Path(s['path']).name}" + (f" ({s['split']})" if s.get("split") else "")
            for s in c["train"]
        )
        dpo = f" / {c['dpo']['max_steps']}" if "dpo" in m["method"] and c.get("dpo") else ""
        rows.append(
            f"| {name} | {m['method']} | {data} | {m['n_train']} | {c['optim']['epochs']}{dpo} "
            f"| r={c['lora']['r']}, alpha={c['lora']['alpha']} "
            f"| {m['heldout_loss_before']:.3f} → {m['heldout_loss_after']:.3f} |"
        )
    return rows


def ship(
    composed: str | Path,
    out: str | Path,
    experts: dict[str, str | Path] | None = None,
    results: dict | None = None,
    command: str = "",
) -> Path:
    """Re-save `composed` into `out` (bf16 experts), carry its calibration report, write a card."""
    from trinityx.model.composed import TrinityXModel

    composed, out = Path(composed), Path(out)
    model = TrinityXModel.from_pretrained(composed)
    model.metadata = {**model.metadata, "shipped_from": str(composed)}
    model.save_pretrained(out, expert_dtype=torch.bfloat16)
    for name in CARRIED:
        if (composed / name).is_file():
            shutil.copy2(composed / name, out / name)
    for name, folder in (experts or {}).items():  # what each expert was trained on travels along
        for meta in EXPERT_META:
            if (Path(folder) / meta).is_file():
                shutil.copy2(Path(folder) / meta, out / "experts" / name / meta)
    rep = json.loads((composed / "report.json").read_text())
    cal = rep["calibration"]
    lines = [
        f"# {out.name}: TrinityX on {model.backbone.name}",
        "",
        "Three LoRA experts (helpful, harmless, honest) on the frozen backbone, composed inside every "
        f"target linear by a {model.routing} router "
        + (f"(top-{model.top_k} gates)" if model.top_k else "(soft gates)")
        + ", calibrated post hoc on held-out prompts and reported on prompts the calibrator never saw.",
        "",
        "```python",
        "from trinityx import TrinityXModel  # or trinityx.model.composed",
        f'model = TrinityXModel.from_pretrained("{out.as_posix()}")',
        "```",
        f"`trinityx serve {out.as_posix()}` serves it over an OpenAI-compatible API.",
        "",
        "## Experts",
        "",
        *(_expert_rows({k: Path(v) for k, v in experts.items()}) if experts else []),
        "",
        "*Mean response NLL on the bundled starter held-out split, before → after training: a "
        "different style from the real training data (e.g. SPARD's long refusals vs the starter's "
        "one-liners), so it can rise while the expert learns its task; the protocol's figures below "
        "are what count.",
        "",
        "## Router (out of sample)",
        "",
        f"Calibration-test accuracy {cal['after']['accuracy']:.3f}, ECE {cal['before']['ece']:.3f} "
        f"before calibration and {cal['after']['ece']:.3f} after ({cal.get('method', '')}); "
        "details in report.md and reliability.png.",
    ]
    if results:
        lines += [
            "",
            "## Results (the experiment's protocol; docs/results.md has every system)",
            "",
            "| system | " + " | ".join(next(iter(results.values()))) + " |",
            "|---|" + "---:|" * len(next(iter(results.values()))),
        ]
        for name, row in results.items():
            lines.append(
                f"| {name} | "
                + " | ".join("—" if v is None else f"{v:.1f}" for v in row.values())
                + " |"
            )
    lines += [
        "",
        "## How it was made",
        "",
        f"`{command}`" if command else "",
        "",
        "Data licences: Alpaca and BeaverTails CC BY-NC 4.0, TruthfulQA Apache-2.0; the "
        "weights inherit the backbone's licence (SmolLM2: Apache-2.0).",
        "",
    ]
    atomic_write_text(out / "README.md", "\n".join(lines))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    if size > SIZE_LIMIT_MB:
        log.warning(
            "%s is %.1f MB, over the %.0f MB budget of a shipped model", out, size, SIZE_LIMIT_MB
        )
    log.info("shipped %s (%.1f MB)", out, size)
    return out
