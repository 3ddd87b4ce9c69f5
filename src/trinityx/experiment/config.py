"""`trinityx run`: the experiment config, and how it turns into the configs of the stages it runs.

One YAML names the stage configs (each a file `trinityx train-expert`, `compose` or `eval` reads
on its own) and the systems to evaluate; the pipeline owns every output path, so all artifacts
land under one `--workdir` (outside the checkout for long runs) and an interrupted run resumes
from what is there. Data paths in the stage configs that start with `data_dir` (as written in
the experiment YAML, `../shared/data` by default) are rebased onto `--data-dir`, so the same
configs run from any folder.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trinityx.config import ComposeConfig, ConfigError, DataSource, TrainExpertConfig, load_config
from trinityx.config_loader import resolve_path
from trinityx.eval.config import EvalConfig, TrainJudgeConfig


@dataclass
class StageRef:
    """A stage config file and dotted overrides applied on top (paths relative to the experiment
    config's folder)."""

    config: str
    """YAML file of the stage (e.g. smollm2_hhh/helpful.yaml)."""
    overrides: list[str] = field(default_factory=list)
    """key=value overrides, as on the command line (e.g. top_k=1)."""
    path: str | None = None
    """Reuse this finished artifact instead of running the stage (copied into the workdir): an
    expert artifact or a plain PEFT adapter folder for `experts` (e.g. the shipped model's
    models/smollm2-hhh/experts/helpful), a composed artifact for `composes`. Run folders do not
    outlive a machine; a committed artifact does. null = run the stage."""


@dataclass
class JudgeRef:
    """A local judge: trained by the pipeline (`trinityx train-judge`), or an existing artifact."""

    path: str | None = None
    """An existing judge folder to reuse (copied into the workdir); null = train it."""
    max_rows: int | None = None
    """Training rows cap when the pipeline trains it (null = all)."""


@dataclass
class SelectSettings:
    """How the system reported as "TrinityX" is chosen: on the calibration split, never on the
    test benchmarks."""

    among: list[str] = field(default_factory=list)
    """Compose names that may be chosen (empty = every compose)."""
    metric: str = "accuracy"
    """Calibration-test metric of the calibrated router (report.json calibration.after):
    `accuracy` (higher wins) or `nll` / `ece` (lower wins); ties keep the first listed."""


@dataclass
class ExperimentConfig:
    """`trinityx run`: experts -> judges -> composes -> evals (every system, one protocol) ->
    compare -> report, each stage reusing its finished artifact."""

    experts: dict[str, StageRef]
    """Dimension -> train-expert config."""
    composes: dict[str, StageRef]
    """Name -> compose config (its `experts` are replaced by the pipeline's)."""
    eval: StageRef
    """The evaluation protocol (an eval config; `model` and output paths set per system)."""
    systems: dict[str, str]
    """Row name -> model spec: base, expert:<dimension>, merge:<method>, multitask:<dir>,
    h3fusion, ensemble, xlora, trinityx:<compose name>, trinityx_uncalibrated:<compose name>."""
    system_overrides: dict[str, list[str]] = field(default_factory=dict)
    """Row name -> dotted eval-config overrides for that system alone (e.g. H3Fusion's
    `baseline_options.router_data`); `<data_dir>/...` paths in them are rebased like the
    stage configs' data paths."""
    judges: dict[str, JudgeRef] = field(default_factory=dict)
    """Judge kind (truth, info, harm, helpfulness, pairwise) -> how to get it."""
    select: SelectSettings = field(default_factory=SelectSettings)
    """Which compose is reported as TrinityX."""
    data_dir: str = "../shared/data"
    """The data-path prefix used in the stage configs; rebased onto `--data-dir`."""
    title: str = "TrinityX HHH experiment"
    """Report title."""
    ship_to: str | None = None
    """Folder to ship the chosen TrinityX model to (bf16 experts + model card), e.g.
    models/smollm2-hhh; null = do not ship."""


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    cfg = load_config(ExperimentConfig, path, overrides)
    problems = []
    known = {"truth", "info", "harm", "helpfulness", "pairwise"}
    problems += [
        f"judges.{k}: unknown kind; known: {sorted(known)}" for k in cfg.judges if k not in known
    ]
    problems += [
        f"system_overrides.{k}: no such row in `systems` ({list(cfg.systems)})"
        for k in cfg.system_overrides
        if k not in cfg.systems
    ]
    for name, spec in cfg.systems.items():
        kind, _, arg = spec.partition(":")
        if kind == "expert" and arg not in cfg.experts:
            problems.append(
                f"systems.{name}: {spec!r} names no expert in `experts` ({list(cfg.experts)})"
            )
        if kind.startswith("trinityx") and arg not in cfg.composes:
            problems.append(
                f"systems.{name}: {spec!r} names no compose in `composes` ({list(cfg.composes)})"
            )
    problems += [
        f"select.among: {n!r} is not a compose" for n in cfg.select.among if n not in cfg.composes
    ]
    if cfg.select.metric not in ("accuracy", "nll", "ece"):
        problems.append(f"select.metric: {cfg.select.metric!r}; expected accuracy, nll or ece")
    if problems:
        raise ConfigError(str(path), problems)
    return cfg


class Layout:
    """Where every artifact of a run lives, under one workdir."""

    def __init__(self, workdir: str | Path) -> None:
        self.root = Path(workdir)

    def expert(self, dim: str) -> Path:
        return self.root / "experts" / dim

    def judges(self) -> Path:
        return self.root / "judges"

    def composed(self, name: str) -> Path:
        return self.root / "composed" / name

    def eval(self, system: str) -> Path:
        return self.root / "eval" / system

    def stamps(self) -> Path:
        return self.root / "stamps"


def _ref(cfg: ExperimentConfig, ref: StageRef) -> Path:
    return Path(resolve_path(cfg, ref.config))


def _rebase(src: DataSource, prefix: str, data_dir: Path) -> DataSource:
    p = src.path.replace("\\", "/")
    pre = prefix.rstrip("/") + "/"
    if p.startswith(pre):
        return dataclasses.replace(src, path=str(data_dir / p[len(pre) :]))
    return src


def _rebase_text(override: str, prefix: str, data_dir: Path) -> str:
    """An override's `<prefix>/...` data paths rebased onto `data_dir` (values are YAML text)."""
    pre = prefix.rstrip("/") + "/"
    return re.sub(rf"(?<![\w./]){re.escape(pre)}", str(data_dir).rstrip("/") + "/", override)


def _rebase_all(stage: Any, names: tuple[str, ...], cfg: ExperimentConfig, data_dir: Path) -> None:
    for n in names:
        setattr(stage, n, [_rebase(s, cfg.data_dir, data_dir) for s in getattr(stage, n)])


def expert_config(
    cfg: ExperimentConfig, dim: str, lay: Layout, data_dir: Path
) -> TrainExpertConfig:
    ref = cfg.experts[dim]
    st = load_config(TrainExpertConfig, _ref(cfg, ref), [*ref.overrides])
    if st.dimension != dim:
        raise ConfigError(
            str(_ref(cfg, ref)), [f"dimension: {st.dimension!r}, but experts.{dim} names it"]
        )
    st.output_dir = str(lay.expert(dim))
    _rebase_all(st, ("train", "heldout"), cfg, data_dir)
    return st


def compose_config(cfg: ExperimentConfig, name: str, lay: Layout, data_dir: Path) -> ComposeConfig:
    ref = cfg.composes[name]
    st = load_config(ComposeConfig, _ref(cfg, ref), [*ref.overrides])
    st.experts = {d: str(lay.expert(d)) for d in cfg.experts}
    st.output_dir = str(lay.composed(name))
    _rebase_all(st, ("router_data", "calibration_data", "calibration_test_data"), cfg, data_dir)
    if getattr(st, "lm_data", None):
        _rebase_all(st, ("lm_data",), cfg, data_dir)
    return st


def judge_config(kind: str, lay: Layout, data_dir: Path, ref: JudgeRef) -> TrainJudgeConfig:
    return TrainJudgeConfig(
        kind=kind,  # type: ignore[arg-type]
        data_dir=str(data_dir),
        out_dir=str(lay.judges() / kind),
        max_rows=ref.max_rows,
        cache_dir=str(lay.root / "judge_cache"),
    )


def system_spec(cfg: ExperimentConfig, spec: str, lay: Layout) -> str:
    kind, _, arg = spec.partition(":")
    if kind == "expert":
        return f"expert:{lay.expert(arg)}"
    if kind.startswith("trinityx"):
        return f"{kind}:{lay.composed(arg)}"
    return spec


def eval_config(cfg: ExperimentConfig, system: str, lay: Layout, data_dir: Path) -> EvalConfig:
    extra = [_rebase_text(o, cfg.data_dir, data_dir) for o in cfg.system_overrides.get(system, [])]
    st = load_config(EvalConfig, _ref(cfg, cfg.eval), [*cfg.eval.overrides, *extra])
    st.model = system_spec(cfg, cfg.systems[system], lay)
    st.name = system
    st.output_dir = str(lay.eval(system))
    st.data_dir = str(data_dir)
    st.experts = {d: str(lay.expert(d)) for d in cfg.experts}
    st.cache_dir = str(lay.root / "eval_cache")
    st.judge.path = str(lay.judges())
    return st
