"""The shapes every benchmark shares: its spec, the context it is scored in, its result.

Kept apart from `harness` (which runs specs) and `benchmark_scoring` (which defines them) so that
both import these types and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    load: Callable[[Path, int | None], list]
    requests: Callable[[list, EvalModel], list]
    score: Callable[[list, list, EvalContext], tuple[dict, list[dict]]]


@dataclass
class BenchmarkResult:
    metrics: dict
    records: list[dict]
    seconds: float
    n_requests: int
    n_computed: int  # requests not found in the cache
    extra: dict = field(default_factory=dict)
