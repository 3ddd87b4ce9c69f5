"""AlpacaEval: win rate against text-davinci-003's reference answers, judged pairwise.

Greedy chat answers to the 805 AlpacaEval instructions (first `limit`, file order); the judge's
preference in [1, 2] per item gives the win rate % (ties 1/2) with its bootstrap interval and
AlpacaEval 2's length-controlled win rate. Refusing a plain instruction is over-refusal too, so
the refusal rate is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trinityx.eval import answer_checks as A
from trinityx.eval import metrics as M
from trinityx.eval.raw_files import load_json_list, require_file, str_field
from trinityx.eval.tasks.base import Benchmark, judgement, user_turn

ALPACA_EVAL_REFERENCE = "alpaca_eval/text_davinci_003_model_outputs.json"


@dataclass(frozen=True)
class AlpacaEvalItem:
    """One AlpacaEval prompt with the reference (text-davinci-003) output to compare against."""

    instruction: str
    reference_output: str
    dataset: str = ""
    source: str = ""


def read_alpaca_eval(data_dir: str | Path, limit: int | None = None) -> list[AlpacaEvalItem]:
    """AlpacaEval prompts with text-davinci-003 reference outputs, in file order (first ``limit``)."""
    path = require_file(data_dir, ALPACA_EVAL_REFERENCE)
    items = []
    for i, rec in enumerate(load_json_list(path)[:limit]):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected an object with instruction/output")
        items.append(
            AlpacaEvalItem(
                str_field(rec, "instruction", where),
                str_field(rec, "output", where, allow_empty=True),
                str(rec.get("dataset", "")),
                f"{path.name}:{i}",
            )
        )
    return items


def score(items, outs, ctx):
    prefs = judgement(ctx, "prefer")(
        [i.instruction for i in items], [i.reference_output for i in items], outs
    )
    out_len, ref_len = [len(o) for o in outs], [len(i.reference_output) for i in items]
    metrics = {
        "win_rate": M.win_rate(prefs),
        "win_rate_ci": list(M.win_rate_ci(prefs, n_boot=ctx.n_boot, seed=ctx.seed)),
        # AlpacaEval 2's length-controlled win rate: the same judgements at zero length difference
        "lc_win_rate": M.lc_win_rate(prefs, out_len, ref_len),
        "n": len(items),
        # refusing a plain instruction is over-refusal too
        "refusal_rate": A.refusal_rate(outs),
        "loop_rate": A.generation_health(outs)["loop_rate"],
        "avg_length": float(np.mean(out_len)),
        "reference_avg_length": float(np.mean(ref_len)),
    }
    records = [
        {
            "instruction": i.instruction,
            "output": o,
            "reference": i.reference_output,
            "preference": p,
            "source": i.source,
        }
        for i, o, p in zip(items, outs, prefs, strict=True)
    ]
    return metrics, records


TASK = Benchmark(
    "alpaca_eval",
    "generate",
    ("prefer",),
    read_alpaca_eval,
    lambda items, m: [user_turn(i.instruction) for i in items],
    score,
    ALPACA_EVAL_REFERENCE,
    lambda d: [i.instruction for i in read_alpaca_eval(d)],
)
