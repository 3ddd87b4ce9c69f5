"""The harness: runs a benchmark task on a model, through the on-disk cache.

A task (eval/tasks/, one file per benchmark, collected in `tasks.registry.BENCHMARKS`) says how to
load its items from the data folder (first N, deterministic), which requests to send through the
model interface (`generate` chat prompts or `loglikelihood` text pairs), and how to score the
outputs with judges and the pure functions of eval/metrics.py. Model outputs go through the
on-disk cache, so an interrupted evaluation resumes and a rerun costs nothing.

Overall = (WR + TI - unsafe) / 3 once alpaca_eval, beavertails and truthfulqa_gen have run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from trinityx.eval import metrics as M
from trinityx.eval.cache import GenerationCache
from trinityx.eval.model_api import EvalModel
from trinityx.eval.tasks.base import BenchmarkResult, EvalContext
from trinityx.eval.tasks.registry import BENCHMARKS

__all__ = [
    "OVERALL_NEEDS",
    "EvalContext",
    "cached_generate",
    "cached_loglikelihood",
    "hhh",
    "overall",
    "run_benchmark",
]


# ------------------------------------------------------------------ cached model calls
def _cache(model: EvalModel, ctx: EvalContext) -> GenerationCache:
    if ctx.cache is None:
        ctx.cache = GenerationCache(None, model.fingerprint)
    if ctx.cache.fingerprint != model.fingerprint:
        raise ValueError("EvalContext.cache belongs to another model fingerprint")
    return ctx.cache


def cached_generate(model: EvalModel, prompts: Sequence, ctx: EvalContext, desc="generate"):
    """Greedy chat answers through the cache -> (texts, number generated now)."""
    settings = {"kind": "generate", "decoding": "greedy", "max_new_tokens": ctx.max_new_tokens}
    reqs = [[dict(m) for m in p] for p in prompts]
    call = lambda batch: model.generate(batch, ctx.max_new_tokens, ctx.batch_size)  # noqa: E731
    return _cache(model, ctx).map(reqs, settings, call, ctx.batch_size, f"{desc} [{model.name}]")


def cached_loglikelihood(model: EvalModel, pairs: Sequence, ctx: EvalContext, desc="loglik"):
    """Summed continuation log-probs through the cache -> (values, number computed now)."""
    settings = {"kind": "loglikelihood"}
    reqs = [[c, x] for c, x in pairs]
    call = lambda batch: model.loglikelihood([tuple(r) for r in batch], ctx.batch_size)  # noqa: E731
    # Requests of one context stay together (sorted by context) and chunks are large, so the
    # model runs each context once for all its continuations and a shared few-shot primer
    # once per chunk (eval/loglikelihood.py); one flush per chunk is plenty.
    return _cache(model, ctx).map(
        reqs,
        settings,
        call,
        ctx.batch_size * 32,
        f"{desc} [{model.name}]",
        order=lambda r: (r[0], -len(r[1])),
    )


OVERALL_NEEDS = ("alpaca_eval", "beavertails", "truthfulqa_gen")


def run_benchmark(
    name: str, model: EvalModel, ctx: EvalContext, limit: int | None = None
) -> BenchmarkResult:
    """Load -> requests -> (cached) model outputs -> score. Deterministic for a fixed limit."""
    spec = BENCHMARKS[name]
    t0 = time.perf_counter()
    items = spec.load(ctx.data_dir, limit)
    if not items:
        raise ValueError(f"{name}: no items loaded from {ctx.data_dir}")
    reqs = spec.requests(items, model)
    call = cached_generate if spec.kind == "generate" else cached_loglikelihood
    outs, computed = call(model, reqs, ctx, desc=name)
    t_model = time.perf_counter() - t0
    metrics, records = spec.score(items, outs, ctx)
    return BenchmarkResult(
        metrics, records, time.perf_counter() - t0, len(reqs), computed, {"model_seconds": t_model}
    )


def overall(results: dict[str, dict]) -> float | None:
    """(WR + TI - unsafe) / 3 from per-benchmark metrics, or None if one of the three is missing."""
    if not all(n in results for n in OVERALL_NEEDS):
        return None
    return M.overall_score(
        results["alpaca_eval"]["win_rate"],
        results["truthfulqa_gen"]["ti"],
        results["beavertails"]["unsafe_rate"],
    )


def hhh(results: dict[str, dict]) -> float | None:
    """`metrics.hhh_score` (Avg charged for over-refusal), or None without the four benchmarks."""
    if overall(results) is None or "over_refusal" not in results:
        return None
    return M.hhh_score(
        results["alpaca_eval"]["win_rate"],
        results["truthfulqa_gen"]["ti"],
        results["beavertails"]["unsafe_rate"],
        results["over_refusal"]["over_refusal_rate"],
    )
