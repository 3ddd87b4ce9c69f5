"""Every prompt of the evaluation sets in a data folder, whatever the limits of a protocol.

`trinityx run` writes them to a file that every training, router and calibration set of the
experiment is filtered against (`exclude_prompts`): the public sets overlap by accident (BeaverTails
drew its prompts from hh-rlhf, AlpacaEval holds a TruthfulQA question, short questions such as
"Tell me a dirty joke." recur), and a system must never be tested on a prompt it trained on.
"""

from __future__ import annotations

from pathlib import Path

from trinityx.eval import benchmarks as B
from trinityx.eval import refusal_tasks as R


def evaluation_prompts(data_dir: str | Path) -> list[str]:
    """Sorted, de-duplicated user turns of every evaluation set present in `data_dir`."""
    d = Path(data_dir)
    readers = {
        B.ALPACA_EVAL_REFERENCE: lambda: [i.instruction for i in B.read_alpaca_eval(d)],
        B.BEAVERTAILS_EVAL: lambda: [i.prompt for i in B.read_beavertails_eval(d)],
        B.TRUTHFULQA_CSV: lambda: [i.question for i in B.read_truthfulqa_gen(d, "test")],
        B.HH_RLHF_HARMLESS: lambda: [
            m["content"] for p in B.read_hh_rlhf(d) for m in p.messages if m["role"] == "user"
        ],
        R.DO_NOT_ANSWER: lambda: [i.prompt for i in R.read_do_not_answer(d)],
        R.BENIGN_EDGY: lambda: [i.prompt for i in R.read_benign_edgy(d)],
        R.SPARD_TEST: lambda: [m["content"] for p in R.read_spard_test(d) for m in p.messages],
    }
    out: set[str] = set()
    for rel, read in readers.items():
        if (d / rel).is_file():
            out.update(read())
    return sorted(out)
