"""`BENCHMARKS`: every benchmark task by name, in the order reports list them; aliases; and the
evaluation prompts of a data folder that no training set of an experiment may contain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trinityx.eval.tasks import alpaca_eval, beavertails, hh_rlhf, refusal, spard, truthfulqa
from trinityx.eval.tasks.base import Benchmark

BENCHMARKS: dict[str, Benchmark] = {
    t.name: t
    for t in (
        alpaca_eval.TASK,
        beavertails.TASK,
        *truthfulqa.TASKS,
        hh_rlhf.TASK,
        *refusal.TASKS,
        spard.TASK,
    )
}
ALIASES: dict[str, tuple[str, ...]] = {
    "truthfulqa": tuple(t.name for t in truthfulqa.TASKS),
    "refusal": tuple(t.name for t in refusal.TASKS),
}


def expand_benchmarks(names: Sequence[str]) -> list[str]:
    """Resolve aliases, keep order, drop duplicates; unknown names raise listing the known ones."""
    out: list[str] = []
    for n in names:
        for m in ALIASES.get(n, (n,)):
            if m not in BENCHMARKS:
                known = ", ".join([*BENCHMARKS, *ALIASES])
                raise ValueError(f"unknown benchmark {m!r}; known: {known}")
            if m not in out:
                out.append(m)
    return out


def judgements_needed(names: Sequence[str]) -> list[str]:
    return sorted({j for n in expand_benchmarks(names) for j in BENCHMARKS[n].judgements})


def evaluation_prompts(data_dir: str | Path) -> list[str]:
    """Sorted, de-duplicated user turns of every evaluation set present in `data_dir`,
    whatever the limits of a protocol.

    `trinityx run` writes them to a file that every training, router and calibration set of the
    experiment is filtered against (`exclude_prompts`): the public sets overlap by accident
    (BeaverTails drew its prompts from hh-rlhf, AlpacaEval holds a TruthfulQA question, short
    questions such as "Tell me a dirty joke." recur), and a system must never be tested on a
    prompt it trained on.
    """
    d = Path(data_dir)
    out: set[str] = set()
    for spec in BENCHMARKS.values():
        if spec.prompts is not None and (d / spec.data_file).is_file():
            out.update(spec.prompts(d))
    return sorted(out)
