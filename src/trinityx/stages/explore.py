"""Stage `explore`: the HHH trade-off map of a composed model, and its "just right" preset.

setup (check the config and every data file before any model time; load the artifact) ->
sweep (router alone, the simplex grid of user weights with its corners, the refusal dial's
taus; each point scored by eval/explore/protocol.py through the harness cache, so an interrupted
sweep resumes) -> analyse (HHH axes, Pareto front, is the router on it, best HHH point) ->
save (report.md, results.json, ternary maps, front and dial PNGs, config.yaml, atomically;
the best point as a named preset in <model>/presets.json, atomically).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from trinityx.config import dump_yaml, resolve_path
from trinityx.eval.explore import plots
from trinityx.eval.explore.config import ExploreConfig, check_explore_config
from trinityx.eval.explore.grid import sweep_points
from trinityx.eval.explore.pareto import AXES, hhh_axes, pareto_front, recommend
from trinityx.eval.explore.protocol import check_data, prefer_judge, score_point
from trinityx.eval.explore.report import explore_markdown
from trinityx.eval.tasks.refusal import read_benign_edgy, read_do_not_answer
from trinityx.model.artifacts import ArtifactError, atomic_dir, write_json
from trinityx.model.presets import HARMLESS, Preset, save_preset

log = logging.getLogger(__name__)


def router_mean_probs(tx, prompts: list[str], batch_size: int) -> dict[str, float] | None:
    """Mean calibrated routing decision over prompts: where the router sits on the simplex."""
    if tx.routing == "none" or not prompts:
        return None
    with torch.no_grad():
        probs = [
            tx.router_probs(*tx.encode(prompts[s : s + batch_size]))
            for s in range(0, len(prompts), batch_size)
        ]
    mean = torch.cat(probs).mean(0)
    return dict(zip(tx.expert_names, mean.tolist(), strict=True))


def run(cfg: ExploreConfig, *, model=None, judge=None) -> Path:
    """Sweep, score, plot, recommend; returns the output folder. `model` / `judge` replace the
    ones the config describes (tests, notebooks)."""
    from trinityx.model.composed import TrinityXModel

    check_explore_config(cfg)
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    data_dir = Path(resolve_path(cfg, cfg.data_dir))
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist; set data_dir")
    check_data(cfg, data_dir)
    note = None
    if judge is None:
        judge, note = prefer_judge(cfg)
    tx = model or TrinityXModel.from_pretrained(resolve_path(cfg, cfg.model), cfg.backbone)
    names = tx.expert_names
    dial = bool(cfg.taus) and HARMLESS in names and tx.routing != "none"
    points = sweep_points(names, cfg.grid_steps, cfg.router_only, cfg.taus, dial)
    cache_dir = resolve_path(cfg, cfg.cache_dir)
    t0, rows = time.perf_counter(), []
    for p in tqdm(points, desc="explore", unit="point", file=sys.stderr):
        r = score_point(tx, p, cfg, data_dir, cache_dir, judge)
        rows.append({**p.to_dict(), **r, "axes": hhh_axes(r["metrics"])})
        log.info(
            "%s: %s (%.1f s)",
            p.name,
            {k: round(v, 1) for k, v in r["metrics"].items()},
            r["seconds"],
        )
    axes = [a for a in AXES if all(r["axes"][a] is not None for r in rows)]
    front = pareto_front([[r["axes"][a] for a in axes] for r in rows]) if axes else []
    best = recommend(rows)
    router_i = next((i for i, r in enumerate(rows) if r["kind"] == "router"), None)
    items = read_do_not_answer(data_dir, cfg.limits.get("refusal", 0) or 1, stratify=False)
    items += read_benign_edgy(data_dir, cfg.limits.get("over_refusal", 0) or 1, stratify=False)
    prompts = [i.prompt for i in items]
    mean_probs = router_mean_probs(tx, prompts, cfg.batch_size)
    res = {
        "model": cfg.model,
        "experts": names,
        "routing": tx.routing,
        "weight_mode": cfg.weight_mode,
        "limits": dict(cfg.limits),
        "points": rows,
        "axes_used": axes,
        "front": front,
        "recommended": best,
        "router_on_front": None if router_i is None or not axes else router_i in front,
        "router_mean_probs": mean_probs,
        "preset": cfg.preset_name if cfg.save_preset and best is not None else None,
        "notes": [n for n in [note] if n],
        "seconds": time.perf_counter() - t0,
        "command": f"trinityx explore {cfg.model} output_dir={cfg.output_dir}",
        "figures": [],
    }
    with atomic_dir(out) as tmp:
        res["figures"] = _figures(res, names, tmp, mean_probs)
        write_json(tmp / "results.json", res)
        (tmp / "report.md").write_text(explore_markdown(res), encoding="utf-8")
        (tmp / "config.yaml").write_text(dump_yaml(cfg))
    if res["preset"] is not None:
        b = rows[best]
        preset = Preset(
            weights=b["weights"],
            mode=cfg.weight_mode if b["weights"] is not None else "multiply",
            refusal_tau=b["tau"],
            description=f"best HHH score ({b['axes']['hhh']:.1f}) of `trinityx explore` "
            f"({len(rows)} points, point {b['name']}; report {out / 'report.md'})",
            metrics={**b["metrics"], **{k: v for k, v in b["axes"].items() if v is not None}},
        )
        save_preset(resolve_path(cfg, cfg.model), cfg.preset_name, preset)
        log.info("preset %r saved into %s", cfg.preset_name, cfg.model)
    log.info("trade-off map written to %s", out)
    return out


def _figures(res: dict, names: list[str], folder: Path, mean_probs) -> list[str]:
    """Every PNG of the run (names relative to the folder)."""
    rows, figs = res["points"], []
    router_xy = None
    if mean_probs is not None and len(names) == 3:
        router_xy = plots.to_xy([mean_probs[n] for n in names]).tolist()
    metrics = sorted({k for r in rows for k in r["metrics"]})
    if len(names) == 3:
        for m in [*metrics, *res["axes_used"], "hhh"]:
            f = f"ternary_{m}.png"
            plots.ternary_map(rows, names, m, folder / f, router_xy, res["recommended"])
            figs.append(f)
    plots.pareto_plot(rows, res["front"], res["recommended"], folder / "pareto.png")
    figs.append("pareto.png")
    if any(r["kind"] == "dial" for r in rows):
        plots.dial_curve(rows, folder / "dial.png")
        figs.append("dial.png")
    return figs
