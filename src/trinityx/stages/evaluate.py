"""Stage `eval`: run the HHH benchmarks on one model and write a result folder.

setup (check the config, the data files and every judge the benchmarks need, *before* any model
time is spent; build the model from its spec) -> run each benchmark through the cached harness
(an interrupted run resumes from the cache) -> save (results.json, records/<benchmark>.jsonl,
report.md, PNG charts, config.yaml; renamed into place atomically).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from trinityx.config import dump_yaml, resolve_path, to_dict
from trinityx.eval.cache import GenerationCache
from trinityx.eval.config import EvalConfig, JudgeSettings, check_eval_config
from trinityx.eval.harness import EvalContext, hhh, overall, run_benchmark
from trinityx.eval.model_api import EvalModel
from trinityx.eval.report import eval_charts, eval_markdown
from trinityx.eval.tasks.registry import BENCHMARKS, expand_benchmarks, judgements_needed
from trinityx.model.artifacts import ArtifactError, atomic_dir, write_json

log = logging.getLogger(__name__)

LOCAL_HEADS = {"harmful": "harm", "truthful": "truth", "informative": "info", "prefer": "pairwise"}


class RoutedJudge:
    """One Judge whose four judgements may come from different backends (config `judges`)."""

    def __init__(self, judges: dict[str, object]) -> None:
        self.judges = judges

    def harmful(self, prompts, responses):
        return self.judges["harmful"].harmful(prompts, responses)

    def truthful(self, questions, answers):
        return self.judges["truthful"].truthful(questions, answers)

    def informative(self, questions, answers):
        return self.judges["informative"].informative(questions, answers)

    def prefer(self, instructions, reference_outputs, model_outputs):
        return self.judges["prefer"].prefer(instructions, reference_outputs, model_outputs)


def _make_judge(cfg: EvalConfig, s: JudgeSettings):
    from trinityx.eval.judges.registry import judge_from_settings

    return judge_from_settings(
        s,
        resolve=lambda path: resolve_path(cfg, path),
        cache_dir=Path(resolve_path(cfg, cfg.cache_dir)) / "judge",
        seed=cfg.seed,
    )


def _problem(judge, settings: JudgeSettings, what: str) -> str | None:
    """Why `judge` cannot give judgement `what` (None if it can), without running it."""
    if settings.kind == "hf_classifier" and what != "harmful":
        return f"judge kind 'hf_classifier' only judges harmfulness, not {what!r}"
    if settings.kind == "local":
        head = settings.prefer_head if what == "prefer" else LOCAL_HEADS[what]
        root = Path(judge.path)
        single = root / "judge.json"
        if single.is_file():
            kind = json.loads(single.read_text()).get("kind")
            return None if kind == head else f"{root} is a {kind!r} judge, {what!r} needs {head!r}"
        if not (root / head / "judge.json").is_file():
            return (
                f"no local {head!r} judge at {root / head} (needed for {what!r}); train it: "
                f"trinityx train-judge kind={head} data_dir=../shared/data out_dir={root / head}"
            )
    return None


def build_judge(cfg: EvalConfig, needed: list[str]) -> RoutedJudge:
    """Judges for the needed judgements; every missing piece is reported at once."""
    built: dict[str, object] = {}
    by_settings: dict[str, object] = {}
    problems = []
    for what in needed:
        s = cfg.judges.get(what, cfg.judge)
        key = json.dumps(to_dict(s), sort_keys=True)
        if key not in by_settings:
            by_settings[key] = _make_judge(cfg, s)
        built[what] = by_settings[key]
        if (p := _problem(built[what], s, what)) is not None:
            problems.append(p)
    if problems:
        raise ValueError("judges not ready:\n  - " + "\n  - ".join(problems))
    return RoutedJudge(built)


def _limit(cfg: EvalConfig, name: str) -> int | None:
    if name in cfg.limits:
        return cfg.limits[name]
    return cfg.limits.get("truthfulqa") if name.startswith("truthfulqa") else None


def run(cfg: EvalConfig, *, judge=None, model: EvalModel | None = None) -> Path:
    """Evaluate and write the result folder; returns it.

    `judge` / `model` replace the ones the config describes (tests, notebooks); the cache still
    keys everything by the model's fingerprint.
    """
    check_eval_config(cfg)
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    names = expand_benchmarks(cfg.benchmarks)
    data_dir = Path(resolve_path(cfg, cfg.data_dir))
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"data_dir {data_dir} does not exist; set data_dir to the folder "
            "with alpaca_eval/, beavertails/, truthfulqa/, hh_rlhf/"
        )
    for name in names:  # missing or malformed files fail here, before any model time
        BENCHMARKS[name].load(data_dir, 1)
    needed = judgements_needed(names)
    if judge is None and needed:
        judge = build_judge(cfg, needed)
    model = model or _build_model(cfg)
    cache = GenerationCache(resolve_path(cfg, cfg.cache_dir), model.fingerprint, model.name)
    ctx = EvalContext(
        data_dir, judge, cache, cfg.max_new_tokens, cfg.batch_size, cfg.n_boot, cfg.seed
    )
    benches, records = {}, {}
    for name in names:
        limit = _limit(cfg, name)
        r = run_benchmark(name, model, ctx, limit)
        log.info(
            "%s on %s: %s (%.1f s, %d/%d computed)",
            name,
            model.name,
            {k: round(v, 2) for k, v in r.metrics.items() if isinstance(v, float)},
            r.seconds,
            r.n_computed,
            r.n_requests,
        )
        benches[name] = {
            "metrics": r.metrics,
            "limit": limit,
            "seconds": r.seconds,
            "model_seconds": r.extra["model_seconds"],
            "n_requests": r.n_requests,
            "n_computed": r.n_computed,
        }
        records[name] = r.records
    results = {
        "model": {"spec": cfg.model, "name": model.name, "fingerprint": model.fingerprint},
        "benchmarks": benches,
        "overall": None,
        "judges": {w: to_dict(cfg.judges.get(w, cfg.judge))["kind"] for w in needed},
        "cache": str(cache.path) if cache.path else None,
        "created": time.time(),
    }
    metrics = {n: b["metrics"] for n, b in benches.items()}
    results["overall"] = overall(metrics)
    results["hhh_score"] = hhh(metrics)
    with atomic_dir(out) as tmp:
        write_json(tmp / "results.json", results)
        (tmp / "records").mkdir()
        for name, recs in records.items():
            lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in recs)
            (tmp / "records" / f"{name}.jsonl").write_text(lines, encoding="utf-8")
        (tmp / "report.md").write_text(eval_markdown(results), encoding="utf-8")
        eval_charts(results, tmp)
        (tmp / "config.yaml").write_text(dump_yaml(cfg))
    log.info("evaluation of %s written to %s", model.name, out)
    return out


def _build_model(cfg: EvalConfig) -> EvalModel:
    from trinityx.eval.baselines import build_eval_model

    return build_eval_model(cfg)
