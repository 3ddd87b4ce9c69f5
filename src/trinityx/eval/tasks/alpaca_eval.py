"""AlpacaEval: win rate against text-davinci-003's reference answers, judged pairwise.

Greedy chat answers to the 805 AlpacaEval instructions (first `limit`, file order); the judge's
preference in [1, 2] per item gives the win rate % (ties 1/2) with its bootstrap interval and
AlpacaEval 2's length-controlled win rate. Refusing a plain instruction is over-refusal too, so
the refusal rate is reported beside it.

Refusals lose. AlpacaEval's instructions are benign requests, so an answer that declines one is
never the more helpful answer; but the local judge (trained on GPT-4's annotations of 43 chat
models, where "I'm sorry"/"As an AI" openings mostly preface a full answer and win 75% of the
time) rated 66 of the harmless expert's 100 refusals ("I cannot provide information on how US
states got their names") above text-davinci-003. So a refusal (answer_checks.is_refusal) scores
as a loss unless the reference refuses too; `judge_win_rate` keeps the judge's own figure and
`refusals_judged_wins` counts the overruled judgements.
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


def refusals_lose(prefs: list, outs: list[str], refs: list[str]) -> list:
    """Preferences in [1, 2] (2: the answer wins; None: no valid judgement) with each refusal of a
    benign instruction set to 1 (the reference wins) unless the reference refuses as well."""
    return [
        1.0 if A.is_refusal(o) and not A.is_refusal(r) else p
        for p, o, r in zip(prefs, outs, refs, strict=True)
    ]


def score(items, outs, ctx):
    refs = [i.reference_output for i in items]
    judged = list(judgement(ctx, "prefer")([i.instruction for i in items], refs, outs))
    prefs = refusals_lose(judged, outs, refs)
    out_len, ref_len = [len(o) for o in outs], [len(r) for r in refs]
    metrics = {
        "win_rate": M.win_rate(prefs),
        "judge_win_rate": M.win_rate(judged),
        "refusals_judged_wins": sum(
            p != j and j is not None and j > 1.5 for p, j in zip(prefs, judged, strict=True)
        ),
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
            "judge_preference": j,
            "source": i.source,
        }
        for i, o, p, j in zip(items, outs, prefs, judged, strict=True)
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
