"""Stage `run`: the whole experiment as one resumable pipeline.

experts -> judges -> composes -> evals (every system through one protocol) -> compare -> report.
Each step writes one artifact folder under the workdir and a stamp (stamps/<step>.json: the
SHA-256 of the step's resolved config and its wall time). A step whose artifact is finished is
reused; if its config changed since, the run stops and names the folder to delete (or pass
`--restart <step>`), so a stale artifact never silently feeds a new result. Interrupting a long
stage loses at most that stage's progress since its last checkpoint (experts and routers resume
from theirs, evaluation from the generation cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from trinityx.config_loader import dump_yaml, resolve_path
from trinityx.eval.config import CompareConfig
from trinityx.experiment.config import (
    ExperimentConfig,
    Layout,
    compose_config,
    eval_config,
    expert_config,
    judge_config,
)
from trinityx.model.artifacts import ArtifactError, atomic_write_text, write_json

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One unit of the pipeline: its artifact folder, how to tell it is finished, how to run it."""

    name: str  # e.g. experts/helpful
    out: Path
    config_text: str  # the resolved config, hashed for the stamp
    done: Callable[[Path], bool]
    run: Callable[[], object]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plan(cfg: ExperimentConfig, workdir: Path, data_dir: Path) -> list[Step]:
    """Every step in order, with resolved configs (nothing runs; config errors surface here)."""
    from trinityx.stages import compose, evaluate, train_expert, train_judge

    lay = Layout(workdir)
    exclude = _write_eval_prompts(data_dir, lay.root / "eval_prompts.jsonl")
    steps: list[Step] = []
    for dim, ref in cfg.experts.items():
        st = expert_config(cfg, dim, lay, data_dir)
        st.exclude_prompts = exclude
        if ref.path is not None:
            steps.append(
                _adopt(f"experts/{dim}", resolve_path(cfg, ref.path), lay.expert(dim), _is_adapter)
            )
            continue
        steps.append(
            Step(
                f"experts/{dim}",
                lay.expert(dim),
                dump_yaml(st),
                lambda p: (p / "metrics.json").is_file(),
                lambda st=st: train_expert.run(st),
            )
        )
    for kind, ref in cfg.judges.items():
        out = lay.judges() / kind
        if ref.path is not None:
            src = Path(ref.path).expanduser()
            steps.append(
                Step(
                    f"judges/{kind}",
                    out,
                    f"copy {src.resolve()}",
                    lambda p: (p / "judge.json").is_file(),
                    lambda src=src, out=out: _copy_judge(src, out),
                )
            )
        else:
            jc = judge_config(kind, lay, data_dir, ref)
            steps.append(
                Step(
                    f"judges/{kind}",
                    out,
                    dump_yaml(jc),
                    lambda p: (p / "judge.json").is_file(),
                    lambda jc=jc: train_judge.run(jc),
                )
            )
    for name, ref in cfg.composes.items():
        st = compose_config(cfg, name, lay, data_dir)
        st.exclude_prompts = exclude
        if ref.path is not None:
            steps.append(
                _adopt(
                    f"composed/{name}",
                    resolve_path(cfg, ref.path),
                    lay.composed(name),
                    lambda p: (p / "report.json").is_file(),
                )
            )
            continue
        steps.append(
            Step(
                f"composed/{name}",
                lay.composed(name),
                dump_yaml(st),
                lambda p: (p / "report.json").is_file(),
                lambda st=st: compose.run(st),
            )
        )
    for system in cfg.systems:
        st = eval_config(cfg, system, lay, data_dir)
        st.exclude_prompts = exclude
        steps.append(
            Step(
                f"eval/{system}",
                lay.eval(system),
                dump_yaml(st),
                lambda p: (p / "results.json").is_file(),
                lambda st=st: evaluate.run(st),
            )
        )
    return steps


def _write_eval_prompts(data_dir: Path, path: Path) -> str:
    """Every evaluation prompt in `data_dir`, one JSON string per line: what no expert, router or
    calibrator of the run may train on (the stage configs point `exclude_prompts` here)."""
    from trinityx.eval.tasks.registry import evaluation_prompts

    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in evaluation_prompts(data_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return str(path)


def _is_adapter(p: Path) -> bool:
    """A finished expert: a trinityx expert artifact or a plain PEFT adapter folder."""
    return (p / "metrics.json").is_file() or (p / "adapter_config.json").is_file()


def _adopt(name: str, src: str, out: Path, done: Callable[[Path], bool]) -> Step:
    """A step that copies a finished artifact instead of running its stage; its stamp records the
    source's path and a hash of its files, so swapping the source for another stops the run."""
    src_p = Path(src).expanduser()

    def run() -> None:
        if not done(src_p):
            raise FileNotFoundError(
                f"{name}: path {src_p} is not a finished artifact of this "
                "stage (an expert artifact / PEFT adapter, a composed model)"
            )
        _copy_tree(src_p, out)

    h = hashlib.sha256()
    for f in sorted(src_p.rglob("*")) if src_p.is_dir() else []:
        if f.is_file():
            h.update(f.relative_to(src_p).as_posix().encode() + f.read_bytes())
    return Step(name, out, f"copy {src_p.resolve()} sha256 {h.hexdigest()}", done, run)


def _copy_judge(src: Path, out: Path) -> None:
    if not (src / "judge.json").is_file():
        raise FileNotFoundError(
            f"{src}/judge.json not found: `judges.<kind>.path` must be a folder "
            "written by `trinityx train-judge`"
        )
    _copy_tree(src, out)


def _copy_tree(src: Path, out: Path) -> None:
    """Copy a folder atomically (a .partial sibling, then one rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(out)


def _check_stamp(step: Step, stamps: Path, restart: set[str]) -> bool:
    """True when the step's finished artifact can be reused; raises when it is stale."""
    stamp = stamps / f"{step.name.replace('/', '__')}.json"
    if step.name in restart or step.name.split("/")[0] in restart:
        if step.out.exists():
            log.info("%s: --restart, removing %s", step.name, step.out)
            shutil.rmtree(step.out)
        stamp.unlink(missing_ok=True)
        return False
    if not step.done(step.out):
        return False
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old["config_sha256"] != _sha(step.config_text):
            raise ArtifactError(
                f"{step.out} was made with another config than this run's {step.name} (see "
                f"{stamp}); delete the folder or run again with --restart {step.name}"
            )
    else:  # made outside the pipeline (e.g. by `trinityx train-expert` with the same config)
        log.warning("%s: reusing %s, which has no stamp of this pipeline", step.name, step.out)
        write_json(
            stamp, {"config_sha256": _sha(step.config_text), "seconds": None, "adopted": True}
        )
    return True


def run(
    cfg: ExperimentConfig,
    workdir: str | Path,
    data_dir: str | Path,
    restart: list[str] | None = None,
    only: list[str] | None = None,
) -> Path:
    """Run what is left of the experiment under `workdir`; returns the report folder."""
    from trinityx.experiment.report import write_report
    from trinityx.stages import compare

    workdir, data_dir = Path(workdir), Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data-dir {data_dir} is not a folder (see ../shared/data/README.md)"
        )
    steps = plan(cfg, workdir, data_dir)
    if only:
        unknown = [
            o for o in only if not any(s.name == o or s.name.startswith(o + "/") for s in steps)
        ]
        if unknown:
            raise ValueError(f"--only {unknown}: no such step; steps: {[s.name for s in steps]}")
        steps = [s for s in steps if any(s.name == o or s.name.startswith(o + "/") for o in only)]
    stamps = Layout(workdir).stamps()
    stamps.mkdir(parents=True, exist_ok=True)
    write_json(workdir / "run.json", {"data_dir": str(data_dir.resolve())})
    todo = [s for s in steps if not _check_stamp(s, stamps, set(restart or []))]
    log.info("experiment in %s: %d steps, %d to run", workdir, len(steps), len(todo))
    bar = tqdm(todo, desc="experiment", unit="step")
    for step in bar:
        bar.set_postfix_str(step.name)
        t0 = time.perf_counter()
        step.run()
        secs = time.perf_counter() - t0
        write_json(
            stamps / f"{step.name.replace('/', '__')}.json",
            {"config_sha256": _sha(step.config_text), "seconds": secs, "finished": time.time()},
        )
        log.info("%s finished in %.0f s", step.name, secs)
    evals = [str(Layout(workdir).eval(s)) for s in cfg.systems if Layout(workdir).eval(s).is_dir()]
    if evals:
        compare.run(
            CompareConfig(
                results=evals, output_dir=str(workdir / "compare"), title=cfg.title, overwrite=True
            )
        )
    report = write_report(cfg, workdir)
    if cfg.ship_to:
        _ship(cfg, workdir, report)
    return report


SHIP_COLUMNS = (
    "WR ↑",
    "unsafe ↓",
    "TI ↑",
    "MC1",
    "MC2",
    "refuse harmful ↑",
    "over-refuse ↓",
    "HHH ↑",
)


def _ship(cfg: ExperimentConfig, workdir: Path, report: Path) -> None:
    from trinityx.experiment.ship import ship

    res = json.loads((report / "results.json").read_text())
    if res["chosen"] is None:
        log.warning("ship_to=%s: no compose finished, nothing shipped", cfg.ship_to)
        return
    lay = Layout(workdir)
    rows = {
        s: {c: r.get(c) for c in SHIP_COLUMNS}
        for s, r in res["systems"].items()
        if s in ("base", res["trinityx_system"])
    }
    ship(
        lay.composed(res["chosen"]),
        cfg.ship_to,
        {d: lay.expert(d) for d in cfg.experts},
        rows,
        command=f"trinityx run <experiment config> --workdir {workdir}",
    )
