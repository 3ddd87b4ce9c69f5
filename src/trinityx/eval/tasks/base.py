"""What every benchmark task shares: its spec, the context it is scored in, its result, and the
small helpers the task modules score with.

A task module (one per benchmark, beside this file) builds a `Benchmark`: how to load its items
from the data folder, which requests to send through the model interface, how to score the
outputs. `registry` collects them; `eval/harness.py` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trinityx.eval import metrics as M
from trinityx.eval.cache import GenerationCache
from trinityx.eval.model_api import EvalModel


@dataclass
class EvalContext:
    """Everything a benchmark needs besides the model."""

    data_dir: Path
    judge: Any = None  # a trinityx.eval.judges.base.Judge (None for log-likelihood-only runs)
    cache: GenerationCache | None = None
    max_new_tokens: int = 256
    batch_size: int = 8
    n_boot: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Literal["generate", "loglikelihood"]
    judgements: tuple[str, ...]  # Judge methods the scoring calls
    load: Callable[[Path, int | None], list]  # (data_dir, limit) -> items, first `limit`
    requests: Callable[[list, EvalModel], list]  # chat prompts or (context, continuation)
    score: Callable[[list, list, EvalContext], tuple[dict, list[dict]]]  # -> (metrics, records)
    data_file: str = ""  # the file under the data folder whose presence means the set is there
    prompts: Callable[[Path], list[str]] | None = None  # every user turn of the whole set


@dataclass
class BenchmarkResult:
    metrics: dict
    records: list[dict]
    seconds: float
    n_requests: int
    n_computed: int  # requests not found in the cache
    extra: dict = field(default_factory=dict)


def user_turn(text: str) -> list[dict]:
    """A one-turn chat prompt."""
    return [{"role": "user", "content": text}]


def ci(values: Sequence[float], ctx: EvalContext) -> list[float]:
    """The bootstrap interval of the mean, with the context's resamples and seed."""
    return list(M.bootstrap_ci(values, n_boot=ctx.n_boot, seed=ctx.seed))


def judgement(ctx: EvalContext, what: str):
    """The context judge's method `what`, or an error saying the benchmark needs a judge."""
    if ctx.judge is None:
        raise ValueError(f"this benchmark needs a judge for {what!r}; configure `judge`")
    return getattr(ctx.judge, what)
