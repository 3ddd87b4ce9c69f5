"""Stage `calibrate`: refit a composed model's router calibration on new held-out prompts.

Useful when the deployment's prompt mix differs from the starter set: the router stays as trained,
only the temperature (or vector scaling) is refitted, and the report shows before/after.
"""

from __future__ import annotations

import json
from pathlib import Path

from trinityx.config import CalibrateConfig, ComposeConfig, dump_yaml
from trinityx.eval.plots import reliability_diagram
from trinityx.model.artifacts import ArtifactError, write_json
from trinityx.model.composed import TrinityXModel
from trinityx.model.router_training import calibrate, collect_logits, targets_for
from trinityx.stages.compose import default_sources, load_routing


def run(cfg: CalibrateConfig) -> Path:
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(f"{out} already exists; set overwrite=true or choose another output_dir")
    model = TrinityXModel.from_pretrained(cfg.model_dir)
    sources = cfg.calibration_data or default_sources(model.expert_names, "heldout")
    examples = load_routing(cfg, sources)
    targets = targets_for(model, examples)
    logits = collect_logits(model, examples, 16, cfg.max_length)
    previous = {"temperature": model.temperature}
    cal = calibrate(model, logits, targets, cfg.calibration)
    model.metadata = {**model.metadata, "recalibrated_from": str(cfg.model_dir)}
    model.save_pretrained(out)
    old_report = Path(cfg.model_dir) / "report.json"
    report = json.loads(old_report.read_text()) if old_report.is_file() else {}
    report["calibration"] = cal
    report["recalibration"] = {"from": str(cfg.model_dir), "previous": previous}
    write_json(out / "report.json", report)
    reliability_diagram(cal, out / "reliability.png", "router recalibration")
    (out / "config.yaml").write_text(dump_yaml(cfg))
    return out


__all__ = ["run", "ComposeConfig"]
