"""`trinityx demo` (`make demo`): the real pipeline on the embedded SmolLM2, end to end.

1. Trains the three HHH experts on the bundled starter data (LoRA; SFT, SFT then DPO, SFT).
2. Composes them (MoCaE), trains the router, calibrates it on held-out prompts and reports the
   calibration on other held-out prompts (out of sample).
3. Shows what that buys: probe prompts answered by the bare backbone and by TrinityX with the
   routing weights, per-request HHH weights on one prompt, a metric table on the held-out slice;
   written to `<workdir>/report.md`.

Finished stages are reused (an artifact with a manifest, a showcase keyed by the composed
model's manifest), so a second run only prints. The backbone is loaded once; each stage gets a
copy (stages inject LoRA / MoCaE modules in place, so they must not share one model).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from trinityx import DIMENSIONS
from trinityx.config import BackboneConfig, ComposeConfig, TrainExpertConfig, load_config
from trinityx.demo.console import Console, TrainerBar
from trinityx.model.artifacts import write_json
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.shipped_configs import CONFIG_ROOT

REPO_ROOT = Path(__file__).resolve().parents[3]  # a clone's root (the shipped model lives there)
SHIPPED = REPO_ROOT / "models" / "smollm2-hhh"
EXPERT_CONFIGS = {False: CONFIG_ROOT / "smollm2" / "demo", True: CONFIG_ROOT / "tiny"}
COMPOSE_CONFIGS = {
    (False, "sequence"): CONFIG_ROOT / "smollm2" / "demo" / "compose.yaml",
    (False, "token"): CONFIG_ROOT / "smollm2" / "compose.yaml",
    (True, "sequence"): CONFIG_ROOT / "tiny" / "compose_sequence.yaml",
    (True, "token"): CONFIG_ROOT / "tiny" / "compose.yaml",
}


class BackboneCache:
    """`load_backbone` once per backbone config; every call hands out a deep copy."""

    def __init__(self) -> None:
        self._kept: dict[tuple, Backbone] = {}
        self.load_seconds = 0.0

    def __call__(
        self, cfg: BackboneConfig | None = None, *, for_training: bool = False
    ) -> Backbone:
        cfg = cfg or BackboneConfig()
        key = (cfg.name, cfg.device, cfg.dtype, cfg.revision, cfg.cache_dir)
        t0 = time.perf_counter()
        if key not in self._kept:
            self._kept[key] = load_backbone(cfg)
        kept = self._kept[key]
        copy_ = dataclasses.replace(
            kept, model=copy.deepcopy(kept.model), tokenizer=copy.deepcopy(kept.tokenizer)
        )
        copy_.model.train(False)  # as load_backbone leaves it; trainers switch to train mode
        self.load_seconds += time.perf_counter() - t0
        return copy_


def _read(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the demo reads the configs shipped in the package "
            "(`trinityx configs ls`); reinstall trinityx"
        )
    return path


def expert_config(dim: str, fast: bool, root: Path) -> TrainExpertConfig:
    path = _read(EXPERT_CONFIGS[fast] / f"{dim}.yaml")
    return load_config(TrainExpertConfig, path, [f"output_dir={root / 'experts' / dim}"])


def compose_config(fast: bool, routing: str, root: Path, experts: dict[str, Path]) -> ComposeConfig:
    path = _read(COMPOSE_CONFIGS[(fast, routing)])
    over = [f"output_dir={root / 'composed' / routing}"]
    over += [f"experts.{k}={v}" for k, v in experts.items()]
    return load_config(ComposeConfig, path, over)


class Stages:
    """Runs or reuses each stage, timing it; library output goes to the log while it runs."""

    def __init__(self, console: Console, path: Path) -> None:
        self.console, self.path = console, path
        self.timings: dict[str, dict] = {}
        self.previous = json.loads(path.read_text()) if path.is_file() else {}

    def reused(self, name: str) -> None:
        """A reused stage keeps the time it took when it was built (report: "reused (120s)")."""
        old = self.previous.get(name, {})
        built = old.get("built_seconds", None if old.get("reused") else old.get("seconds"))
        self.record(name, seconds=0.0, reused=True, built_seconds=built)

    def record(self, name: str, **entry) -> None:
        """Written after every stage, so an interrupted run still leaves its breakdown."""
        self.timings[name] = self.timings.get(name, {}) | entry
        write_json(self.path, self.timings)

    def artifact(
        self, name: str, out: Path, what: str, run: Callable[[], object], ticker: bool = False
    ) -> None:
        if (out / "manifest.json").is_file():
            self.console.print(f"[{name}] reusing finished {what} at {out}")
            self.reused(name)
            return
        self.console.print(f"[{name}] {what} ...")
        t0 = time.perf_counter()
        with (
            self.console.ticker(f"[{name}]") if ticker else contextlib.nullcontext(),
            self.console.quiet(),
        ):
            run()
        self.record(name, seconds=round(time.perf_counter() - t0, 1), reused=False)


def _backbone_of(folder: Path) -> BackboneConfig:
    """The backbone a composed artifact was built on (its manifest names it)."""
    return BackboneConfig(name=json.loads((folder / "manifest.json").read_text())["backbone"])


def _manifest_key(folder: Path, extra: object) -> str:
    h = hashlib.sha256((folder / "manifest.json").read_bytes())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()


def run_demo(
    fast: bool = False, workdir: str | Path = "runs/demo", routing: str = "sequence"
) -> dict:
    """Train, compose, calibrate, show; returns the showcase dict (also in showcase.json)."""
    from trinityx.demo import report
    from trinityx.stages import compose, train_expert

    root = Path(workdir) / "tiny" if fast else Path(workdir)
    console = Console(root / "demo.log")
    stages = Stages(console, root / "timings.json")
    loader = BackboneCache()
    t_all = time.perf_counter()
    console.print(
        f"TrinityX demo: {'tiny random Llama' if fast else 'SmolLM2-135M-Instruct'}, "
        f"{routing} routing; artifacts under {root}, library output in "
        f"{console.log_path}"
    )
    try:
        experts: dict[str, Path] = {}
        for dim in DIMENSIONS:
            cfg = expert_config(dim, fast, root)
            experts[dim] = Path(cfg.output_dir)
            bar = TrainerBar(console, f"[{dim}]")
            stages.artifact(
                dim,
                experts[dim],
                f"expert ({cfg.method}, {cfg.backbone.name})",
                lambda cfg=cfg, bar=bar: train_expert.run(
                    cfg, callbacks=[bar], backbone_loader=loader
                ),
            )
            if bar.phases:  # training time vs evaluation/loading time within the stage
                stages.record(dim, training=bar.phases)
        console.print(*report.expert_lines(experts))
        ccfg = compose_config(fast, routing, root, experts)
        out = Path(ccfg.output_dir)
        stages.artifact(
            "compose",
            out,
            f"{routing} router training + out-of-sample calibration",
            lambda: compose.run(ccfg, backbone_loader=loader),
            ticker=True,
        )
        console.print(*report.compose_lines(out))
        show = _showcase(root, out, fast, loader, stages, console)
        console.print(*report.showcase_lines(show))
        stages.record("backbone loads+copies", seconds=round(loader.load_seconds, 1))
        stages.record("total", seconds=round(time.perf_counter() - t_all, 1))
        report.write_markdown(root, experts, out, show, stages.timings)
        console.print(
            *report.timing_lines(stages.timings),
            f"report: {root / 'report.md'}  (log: {console.log_path})",
        )
        return show
    finally:
        console.close()


def _showcase(
    root: Path, composed: Path, fast: bool, loader: BackboneCache, stages: Stages, console: Console
) -> dict:
    """Probes, shipped model, weight sweep and held-out table; reused while the composed model
    (and the shipped model's presence) is unchanged."""
    from trinityx.demo import heldout, showcase
    from trinityx.model.composed import TrinityXModel

    path = root / "showcase.json"
    shipped_present = (SHIPPED / "manifest.json").is_file()
    shipped_key = _manifest_key(SHIPPED, {}) if shipped_present else None
    key = _manifest_key(composed, {"shipped": shipped_key, "fast": fast})
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("key") == key:
            console.print("[showcase] reusing probes and metric table from " + str(path))
            stages.reused("showcase")
            return old
    n_new = 8 if fast else 40
    console.print("[showcase] probe prompts, HHH weights and the held-out metric table ...")
    t0 = time.perf_counter()
    n_jobs = 3 + len(heldout.SYSTEMS) + (1 if shipped_present else 0)
    bar = console.bar(total=n_jobs, desc="[showcase]", unit="job")
    with console.quiet():
        model = TrinityXModel.from_pretrained(composed, backbone=loader(_backbone_of(composed)))
        bar.update()
        probes = showcase.answer_probes(model, n_new)
        bar.update()
        sweep = showcase.weight_sweep(model, n_new)
        bar.update()
        table = heldout.metric_table(model, 4 if fast else 12, 8 if fast else 16, bar.update)
        shipped = showcase.answer_shipped(SHIPPED, loader, n_new) if shipped_present else None
        if shipped_present:
            bar.update()
    bar.close()
    shipped = shipped or {"folder": str(SHIPPED), "present": False}
    show = {"key": key, "probes": probes, "sweep": sweep, "table": table, "shipped": shipped}
    write_json(path, show)
    stages.record("showcase", seconds=round(time.perf_counter() - t0, 1), reused=False)
    return show
