"""Stage `calibrate`: refit a composed model's router calibration on new held-out prompts.

Useful when the deployment's prompt mix differs from the starter set: the router stays as trained,
only the calibration (temperature or vector scaling; per layer for token routing) is refitted on
one part of the new prompts and reported, before/after, on another part it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

from trinityx.config import CalibrateConfig, dump_yaml
from trinityx.data.routing_sets import assert_disjoint, calibration_sets
from trinityx.eval.calibration_report import write_calibration_report
from trinityx.model.artifacts import ArtifactError, write_json
from trinityx.model.composed import TrinityXModel
from trinityx.model.router_calibration import calibrate_router


def run(cfg: CalibrateConfig) -> Path:
    """Refit the calibration of cfg.model_dir and write the recalibrated artifact; returns it."""
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    model = TrinityXModel.from_pretrained(cfg.model_dir)
    fit_ex, test_ex, sets = calibration_sets(cfg, model.expert_names, cfg.seed)
    assert_disjoint(calibration_fit=fit_ex, calibration_test=test_ex)
    previous = model.calibration_state()
    cal = calibrate_router(model, fit_ex, test_ex, cfg.calibration, 16, cfg.max_length)
    model.metadata = {
        **model.metadata,
        "recalibrated_from": str(cfg.model_dir),
        "recalibration_sets": sets,
    }
    model.save_pretrained(out)
    old_report = Path(cfg.model_dir) / "report.json"
    report = json.loads(old_report.read_text()) if old_report.is_file() else {}
    report["calibration"] = cal
    report["recalibration"] = {
        "from": str(cfg.model_dir),
        "previous": previous,
        "prompt_sets": sets,
    }
    write_json(out / "report.json", report)
    md = write_calibration_report(cal, out, model.expert_names, "router recalibration", sets)
    (out / "report.md").write_text(f"# Recalibrated from {cfg.model_dir}\n\n{md}")
    (out / "config.yaml").write_text(dump_yaml(cfg))
    return out
