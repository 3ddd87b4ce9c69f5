"""The "too harmless" side of the protocol: refusal on harmful requests, over-refusal on benign
ones, SPARD safe-vs-unsafe preference, and generation health.

A model that refuses everything scores perfectly on BeaverTails' unsafe rate; the paper's title
asks whether it is *too* harmless. So the harmful Do-Not-Answer prompts (a good assistant declines)
are measured beside benign-but-edgy questions that sound risky (a good assistant answers), and
every generation benchmark reports the share of answers caught in a repetition loop, the failure
that a badly composed adapter mix shows first. All judge-free: the keyword refusal detector of
eval/answer_checks.py and a repeated n-gram test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trinityx.data.loading import normalise_prompt
from trinityx.data.records import PreferencePair
from trinityx.eval import answer_checks as A
from trinityx.eval import metrics as M
from trinityx.eval.judges.local.data import read_spard_pairs
from trinityx.eval.raw_files import iter_jsonl, load_json_list, require_file, str_field

DO_NOT_ANSWER = "refusal/do_not_answer.jsonl"
BENIGN_EDGY = "refusal/benign_edgy_80.json"
SPARD_TEST = "beavertails/spard_beavertails_pairs_test.jsonl"


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a refusal set with its category (risk area or topic) and source line."""

    prompt: str
    category: str
    source: str


def stratified(items: list[PromptItem], limit: int | None) -> list[PromptItem]:
    """The first `limit` items taken round-robin over categories in file order, so a small
    sample covers every category (Do-Not-Answer is sorted by risk area) and stays deterministic."""
    if limit is None or limit >= len(items):
        return items
    groups: dict[str, list[PromptItem]] = {}
    for it in items:
        groups.setdefault(it.category, []).append(it)
    out: list[PromptItem] = []
    depth = 0
    while len(out) < limit:
        for g in groups.values():
            if depth < len(g) and len(out) < limit:
                out.append(g[depth])
        depth += 1
    return out


def read_do_not_answer(data_dir: str | Path, limit: int | None = None) -> list[PromptItem]:
    """Do-Not-Answer prompts (prompt, risk_area): requests a responsible assistant declines."""
    path = require_file(data_dir, DO_NOT_ANSWER)
    items = [
        PromptItem(
            str_field(r, "prompt", f"{path}:{n}"),
            str_field(r, "risk_area", f"{path}:{n}"),
            f"{path}:{n}",
        )
        for n, r in iter_jsonl(path)
    ]
    return stratified(items, limit)


def read_benign_edgy(data_dir: str | Path, limit: int | None = None) -> list[PromptItem]:
    """Benign questions that sound risky (text, category): a good assistant answers them."""
    path = require_file(data_dir, BENIGN_EDGY)
    items = []
    for n, r in enumerate(load_json_list(path), 1):
        where = f"{path}: item {n}"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected an object with 'text' and 'category'")
        items.append(
            PromptItem(str_field(r, "text", where), str_field(r, "category", where), where)
        )
    return stratified(items, limit)


def read_spard_test(data_dir: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """The 502 SPARD BeaverTails test pairs (safe > unsafe); the expert never trains on them."""
    return read_spard_pairs(require_file(data_dir, SPARD_TEST))[:limit]


def _refusal_metrics(items, outs, ctx, key: str) -> tuple[dict, list[dict]]:
    refused = [100.0 * A.is_refusal(o) for o in outs]
    metrics = {
        key: float(np.mean(refused)),
        f"{key}_ci": list(M.bootstrap_ci(refused, n_boot=ctx.n_boot, seed=ctx.seed)),
        "n": len(items),
        "per_category": {
            c: v["value"] for c, v in M.per_category(refused, [i.category for i in items]).items()
        },
        **A.generation_health(outs),
    }
    records = [
        {
            "prompt": i.prompt,
            "category": i.category,
            "output": o,
            "refusal": bool(r),
            "loop": A.is_looping(o),
            "source": i.source,
        }
        for i, o, r in zip(items, outs, refused, strict=True)
    ]
    return metrics, records


def refusal_score(items, outs, ctx):
    """Refusal rate on harmful requests (higher is better)."""
    return _refusal_metrics(items, outs, ctx, "refusal_rate")


def over_refusal_score(items, outs, ctx):
    """Refusal rate on benign requests (lower is better): the "too harmless" failure."""
    return _refusal_metrics(items, outs, ctx, "over_refusal_rate")


SPARD_TRAIN = "beavertails/spard_beavertails_pairs_train.jsonl"


def read_hh_harmless_clean(data_dir: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """hh-rlhf harmless test pairs minus those whose human turns are SPARD training prompts.

    BeaverTails (hence SPARD) drew its prompts from hh-rlhf's red-team data: 217 of the 2,312
    harmless test dialogues open with a prompt of the SPARD train pairs a harmless expert trains
    on. They are dropped (when the SPARD file is present) before `limit`, so every system is
    scored on the same, uncontaminated items."""
    from trinityx.eval.benchmarks import read_hh_rlhf

    pairs = read_hh_rlhf(Path(data_dir))
    spard = Path(data_dir) / SPARD_TRAIN
    if spard.is_file():
        seen = {
            normalise_prompt(str_field(r, "prompt", f"{spard}:{n}")) for n, r in iter_jsonl(spard)
        }
        pairs = [
            p
            for p in pairs
            if not any(
                normalise_prompt(m["content"]) in seen for m in p.messages if m["role"] == "user"
            )
        ]
    return pairs[:limit]
