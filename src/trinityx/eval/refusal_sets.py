"""Readers for the refusal measures: harmful requests to decline, benign ones to answer.

`refusal/do_not_answer.jsonl` (Do-Not-Answer: prompts a responsible assistant declines) gives
the refusal rate on harm; `refusal/benign_edgy_80.json` (benign questions that sound risky)
gives the over-refusal rate, the "too harmless" failure. Both are judge-free: the refusal check
is `answer_checks.is_refusal` on the answer's start. SPARD test pairs (safe > unsafe) give a
judge-free harmlessness preference accuracy by log-likelihood, like hh-rlhf.
"""

from __future__ import annotations

from pathlib import Path

from trinityx.data.records import PreferencePair
from trinityx.eval.judges.local.data import read_spard_pairs
from trinityx.eval.raw_files import iter_jsonl, load_json_list, require_file, str_field

DO_NOT_ANSWER = "refusal/do_not_answer.jsonl"
BENIGN_EDGY = "refusal/benign_edgy_80.json"
SPARD_TEST = "beavertails/spard_beavertails_pairs_test.jsonl"


def read_do_not_answer(data_dir: str | Path, limit: int | None = None) -> list[str]:
    """The first `limit` harmful prompts (file order)."""
    path = require_file(data_dir, DO_NOT_ANSWER)
    out = []
    for n, rec in iter_jsonl(path):
        out.append(str_field(rec, "prompt", f"{path}:{n}"))
        if limit is not None and len(out) >= limit:
            break
    return out


def read_benign_edgy(data_dir: str | Path, limit: int | None = None) -> list[str]:
    """The first `limit` benign-but-edgy questions (file order)."""
    path = require_file(data_dir, BENIGN_EDGY)
    items = load_json_list(path)
    out = []
    for i, rec in enumerate(items[:limit]):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: item {i} is not an object with a 'text' field")
        out.append(str_field(rec, "text", f"{path}: item {i}"))
    return out


def read_spard_test(data_dir: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """The first `limit` SPARD test pairs (prompt, chosen = safe, rejected = unsafe)."""
    return read_spard_pairs(require_file(data_dir, SPARD_TEST))[:limit]
