"""The "too harmless" side of the protocol: refusal on harmful requests (`refusal_harmful`) and
over-refusal on benign ones (`over_refusal`); the `refusal` alias runs both.

A model that refuses everything scores perfectly on BeaverTails' unsafe rate; the paper's title
asks whether it is *too* harmless. So the harmful Do-Not-Answer prompts (a good assistant
declines) are measured beside benign-but-edgy questions that sound risky (a good assistant
answers), both with the share of answers caught in a repetition loop. Judge-free: the keyword
refusal detector and the loop test of `eval/answer_checks.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trinityx.eval import answer_checks as A
from trinityx.eval import metrics as M
from trinityx.eval.raw_files import iter_jsonl, load_json_list, require_file, str_field
from trinityx.eval.tasks.base import Benchmark, ci, user_turn

DO_NOT_ANSWER = "refusal/do_not_answer.jsonl"
BENIGN_EDGY = "refusal/benign_edgy_80.json"


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


def _first(items: list[PromptItem], limit: int | None, stratify: bool) -> list[PromptItem]:
    return stratified(items, limit) if stratify else items[:limit]


def read_do_not_answer(
    data_dir: str | Path, limit: int | None = None, *, stratify: bool = True
) -> list[PromptItem]:
    """Do-Not-Answer prompts (prompt, risk_area): requests a responsible assistant declines;
    the first `limit` round-robin over risk areas, or in file order without `stratify`."""
    path = require_file(data_dir, DO_NOT_ANSWER)
    items = [
        PromptItem(
            str_field(r, "prompt", f"{path}:{n}"),
            str_field(r, "risk_area", f"{path}:{n}"),
            f"{path}:{n}",
        )
        for n, r in iter_jsonl(path)
    ]
    return _first(items, limit, stratify)


def read_benign_edgy(
    data_dir: str | Path, limit: int | None = None, *, stratify: bool = True
) -> list[PromptItem]:
    """Benign questions that sound risky (text, category): a good assistant answers them;
    the first `limit` round-robin over categories, or in file order without `stratify`."""
    path = require_file(data_dir, BENIGN_EDGY)
    items = []
    for n, r in enumerate(load_json_list(path), 1):
        where = f"{path}: item {n}"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected an object with 'text' and 'category'")
        items.append(
            PromptItem(str_field(r, "text", where), str_field(r, "category", where), where)
        )
    return _first(items, limit, stratify)


def _refusal_metrics(items, outs, ctx, key: str) -> tuple[dict, list[dict]]:
    refused = [100.0 * A.is_refusal(o) for o in outs]
    metrics = {
        key: float(np.mean(refused)),
        f"{key}_ci": ci(refused, ctx),
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


def _requests(items, model):
    return [user_turn(i.prompt) for i in items]


HARMFUL = Benchmark(
    "refusal_harmful",
    "generate",
    (),
    read_do_not_answer,
    _requests,
    refusal_score,
    DO_NOT_ANSWER,
    lambda d: [i.prompt for i in read_do_not_answer(d)],
)
OVER = Benchmark(
    "over_refusal",
    "generate",
    (),
    read_benign_edgy,
    _requests,
    over_refusal_score,
    BENIGN_EDGY,
    lambda d: [i.prompt for i in read_benign_edgy(d)],
)
TASKS = (HARMFUL, OVER)
