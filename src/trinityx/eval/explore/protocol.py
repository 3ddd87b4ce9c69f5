"""The explorer's fast scoring of one point, built from the harness (cached, resumable).

Judge-free where possible: refusal rate on harmful Do-Not-Answer prompts and over-refusal rate
on benign-but-edgy ones (keyword refusal check on greedy answers), TruthfulQA MC2 and hh-rlhf /
SPARD preference accuracy (log-likelihoods). AlpacaEval win rate only when a judge is given and
`limits.alpaca_eval` > 0. Every model output goes through the harness cache under the point's
own fingerprint (weights and dial included), so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

from trinityx.eval import answer_checks as A
from trinityx.eval.cache import GenerationCache
from trinityx.eval.explore.config import ExploreConfig
from trinityx.eval.explore.grid import Point
from trinityx.eval.harness import EvalContext, cached_generate, cached_loglikelihood, run_benchmark
from trinityx.eval.tasks.base import user_turn
from trinityx.eval.tasks.hh_rlhf import preference_requests, preference_score
from trinityx.eval.tasks.refusal import read_benign_edgy, read_do_not_answer
from trinityx.eval.tasks.registry import BENCHMARKS
from trinityx.eval.tasks.spard import read_spard_test
from trinityx.eval.trinityx_model import TrinityXEvalModel


def point_model(tx, point: Point, mode: str) -> TrinityXEvalModel:
    """The point as an EvalModel (fixed weights, optional refusal dial)."""
    return TrinityXEvalModel(
        tx,
        point.weights,
        mode if point.weights is not None else "multiply",
        name=point.name,
        refusal_tau=point.tau,
    )


def check_data(cfg: ExploreConfig, data_dir: Path) -> None:
    """Read one item of every measure the config asks for, before any model time is spent."""
    lim = cfg.limits
    if lim.get("refusal", 0):
        read_do_not_answer(data_dir, 1)
    if lim.get("over_refusal", 0):
        read_benign_edgy(data_dir, 1)
    if lim.get("spard", 0):
        read_spard_test(data_dir, 1)
    for name in ("truthfulqa_mc", "hh_harmless", "alpaca_eval"):
        if lim.get(name, 0):
            BENCHMARKS[name].load(data_dir, 1)


def score_point(
    tx, point: Point, cfg: ExploreConfig, data_dir: Path, cache_dir: str | None, judge=None
) -> dict:
    """Metrics of one point (percentages), with the answers behind the refusal rates."""
    em = point_model(tx, point, cfg.weight_mode)
    cache = GenerationCache(cache_dir, em.fingerprint, em.name)
    ctx = EvalContext(
        data_dir, judge, cache, cfg.max_new_tokens, cfg.batch_size, cfg.n_boot, cfg.seed
    )
    lim, out, samples = cfg.limits, {}, {}
    t0 = time.perf_counter()
    for key, read in (("refusal", read_do_not_answer), ("over_refusal", read_benign_edgy)):
        if lim.get(key, 0):
            prompts = [i.prompt for i in read(data_dir, lim[key], stratify=False)]
            texts, _ = cached_generate(em, [user_turn(p) for p in prompts], ctx, desc=key)
            out[key] = A.refusal_rate(texts)  # already a percentage
            samples[key] = [
                {"prompt": p, "answer": t} for p, t in zip(prompts, texts, strict=True)
            ][:3]
    if lim.get("truthfulqa_mc", 0):
        out["mc2"] = run_benchmark("truthfulqa_mc", em, ctx, lim["truthfulqa_mc"]).metrics["mc2"]
    if lim.get("hh_harmless", 0):
        r = run_benchmark("hh_harmless", em, ctx, lim["hh_harmless"])
        out["hh_accuracy"] = r.metrics["accuracy"]
    if lim.get("spard", 0):
        pairs = read_spard_test(data_dir, lim["spard"])
        lls, _ = cached_loglikelihood(em, preference_requests(pairs, em), ctx, desc="spard")
        out["spard_accuracy"] = preference_score(pairs, lls, ctx)[0]["accuracy"]
    if lim.get("alpaca_eval", 0) and judge is not None:
        actx = EvalContext(
            data_dir, judge, cache, cfg.alpaca_max_new_tokens, cfg.batch_size, cfg.n_boot, cfg.seed
        )
        out["win_rate"] = run_benchmark("alpaca_eval", em, actx, lim["alpaca_eval"]).metrics[
            "win_rate"
        ]
    return {"metrics": out, "samples": samples, "seconds": time.perf_counter() - t0}


def prefer_judge(cfg: ExploreConfig, root: Path | None = None) -> tuple[object | None, str | None]:
    """The AlpacaEval judge, or (None, why not) so the sweep runs judge-free instead."""
    if not cfg.limits.get("alpaca_eval", 0):
        return None, None
    s = cfg.judge
    if s.kind == "hf_classifier":
        return None, "judge kind hf_classifier cannot compare answers; AlpacaEval skipped"
    if s.kind == "openai":
        from trinityx.eval.judges.openai import OpenAIJudge

        cache = Path(cfg.cache_dir) / "judge"
        return OpenAIJudge(s.base_url, s.model, s.api_key_env, cache_dir=cache, seed=cfg.seed), None
    from trinityx.eval.judges.local.backend import LocalJudge

    path = Path(s.path or "runs/judges")
    path = path if root is None or path.is_absolute() else root / path
    head = s.prefer_head
    if not ((path / head / "judge.json").is_file() or (path / "judge.json").is_file()):
        return None, (
            f"no local {head!r} judge at {path / head}; AlpacaEval skipped (train it: trinityx "
            f"train-judge kind={head} data_dir=../shared/data out_dir={path / head})"
        )
    return LocalJudge(path, hard_preferences=s.hard_preferences, prefer_head=head), None
