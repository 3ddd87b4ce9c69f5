"""SPARD BeaverTails preference (`spard_pref`): does the model prefer the safe answer?

The 502 SPARD test pairs (prompt, safe, unsafe), scored like hh-rlhf (`hh_rlhf.py`): % of pairs
where log P(safe) > log P(unsafe) given the prompt, judge-free. The harmless expert trains on
the SPARD train pairs, never on these.
"""

from __future__ import annotations

from pathlib import Path

from trinityx.data.records import PreferencePair
from trinityx.eval.judges.local.data import read_spard_pairs
from trinityx.eval.raw_files import require_file
from trinityx.eval.tasks.base import Benchmark
from trinityx.eval.tasks.hh_rlhf import preference_requests, preference_score

SPARD_TEST = "beavertails/spard_beavertails_pairs_test.jsonl"


def read_spard_test(data_dir: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """The first `limit` SPARD test pairs (prompt, chosen = safe, rejected = unsafe)."""
    return read_spard_pairs(require_file(data_dir, SPARD_TEST))[:limit]


TASK = Benchmark(
    "spard_pref",
    "loglikelihood",
    (),
    read_spard_test,
    preference_requests,
    preference_score,
    SPARD_TEST,
    lambda d: [m["content"] for p in read_spard_test(d) for m in p.messages],
)
