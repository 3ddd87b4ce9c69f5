"""Readers for the evaluation sets, given a data directory.

Each reader turns one public file layout (see the data README) into plain records, so evaluation code
never parses raw files. Every malformed input raises ``ValueError`` naming the file, the line/row/item
and the field, so a broken download is fixed at the edge instead of surfacing as a wrong number.

Splits follow the prior MoE work (H3Fusion): TruthfulQA in file order, first 408 = train, last
409 = test, no shuffling. The local-judge training readers live in ``trinityx.eval.judges.local.data`` and
are re-exported here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from trinityx.data.readers.hh_rlhf import read_hh_rlhf as read_pairs
from trinityx.data.readers.truthfulqa import split_answers, truthfulqa_table
from trinityx.data.records import MCQuestion, PreferencePair
from trinityx.eval.raw_files import iter_jsonl, load_json_list, require_file, str_field

__all__ = [
    "ALPACA_EVAL_REFERENCE",
    "BEAVERTAILS_EVAL",
    "HH_RLHF_HARMLESS",
    "TRUTHFULQA_CSV",
    "TRUTHFULQA_FEWSHOT",
    "TRUTHFULQA_MC",
    "TRUTHFULQA_TEST_SIZE",
    "TRUTHFULQA_TOTAL",
    "AlpacaEvalItem",
    "BeaverTailsPrompt",
    "TruthfulQAGenItem",
    "iter_jsonl",
    "read_alpaca_eval",
    "read_beavertails_eval",
    "read_hh_rlhf",
    "read_truthfulqa_gen",
    "read_truthfulqa_mc",
    "truthfulqa_preamble",
    "truthfulqa_prompt",
]

TRUTHFULQA_TEST_SIZE = 409
TRUTHFULQA_TOTAL = 817

ALPACA_EVAL_REFERENCE = "alpaca_eval/text_davinci_003_model_outputs.json"
BEAVERTAILS_EVAL = "beavertails/BeaverTails-Evaluation_700.csv"
TRUTHFULQA_MC = "truthfulqa/mc_en_validation_hitz.json"
TRUTHFULQA_CSV = "truthfulqa/TruthfulQA.csv"
TRUTHFULQA_FEWSHOT = "truthfulqa/fewshot_en_train_hitz.json"
HH_RLHF_HARMLESS = "hh_rlhf/harmless-base_test.jsonl.gz"


@dataclass(frozen=True)
class AlpacaEvalItem:
    """One AlpacaEval prompt with the reference (text-davinci-003) output to compare against."""

    instruction: str
    reference_output: str
    dataset: str = ""
    source: str = ""


@dataclass(frozen=True)
class BeaverTailsPrompt:
    """A BeaverTails-Evaluation red-team prompt and its harm category."""

    prompt: str
    category: str
    category_id: int
    source: str = ""


@dataclass(frozen=True)
class TruthfulQAGenItem:
    """A TruthfulQA generation question with its reference answers (for judges and the record)."""

    question: str
    best_answer: str
    correct_answers: tuple[str, ...]
    incorrect_answers: tuple[str, ...]
    category: str = ""
    type: str = ""
    source: str = ""


# --------------------------------------------------------------------------- AlpacaEval


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


# --------------------------------------------------------------------------- BeaverTails


def read_beavertails_eval(
    data_dir: str | Path, limit: int | None = None
) -> list[BeaverTailsPrompt]:
    """BeaverTails-Evaluation prompts; ``limit`` keeps the categories balanced.

    The limit is spread evenly over categories (the first categories in file order get the
    remainder) and within a category the first prompts in file order are kept, so a small run is
    deterministic and still covers every harm category. Output keeps file order.
    """
    path = require_file(data_dir, BEAVERTAILS_EVAL)
    rows: list[BeaverTailsPrompt] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"prompt", "category", "category_id"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {sorted(missing)}")
        for rec in reader:
            where = f"{path}: row {reader.line_num}"
            cid = rec.get("category_id") or ""
            if not cid.strip().lstrip("-").isdigit():
                raise ValueError(f"{where}: field 'category_id' must be an integer ({cid!r})")
            rows.append(
                BeaverTailsPrompt(
                    str_field(rec, "prompt", where),
                    str_field(rec, "category", where),
                    int(cid),
                    f"{path.name}:{reader.line_num}",
                )
            )
    if limit is None or limit >= len(rows):
        return rows
    cats = list(dict.fromkeys(r.category for r in rows))
    quota = {
        c: limit // len(cats) + (1 if k < limit % len(cats) else 0) for k, c in enumerate(cats)
    }
    keep = []
    for r in rows:
        if quota[r.category] > 0:
            quota[r.category] -= 1
            keep.append(r)
    return keep


# --------------------------------------------------------------------------- TruthfulQA


def _split(items: list, split: str, where: str) -> list:
    """First 408 = train, last 409 = test (file order), or everything."""
    if split == "all":
        return items
    if len(items) < TRUTHFULQA_TEST_SIZE:
        raise ValueError(
            f"{where}: {len(items)} questions, fewer than the {TRUTHFULQA_TEST_SIZE}-test split"
        )
    if split == "test":
        return items[-TRUTHFULQA_TEST_SIZE:]
    if split == "train":
        return items[:-TRUTHFULQA_TEST_SIZE]
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


def read_truthfulqa_mc(data_dir: str | Path, split: str = "test") -> list[MCQuestion]:
    """TruthfulQA MC1/MC2 targets; ``split`` = 'test' (last 409), 'train' (first 408) or 'all'."""
    path = require_file(data_dir, TRUTHFULQA_MC)
    out = []
    for i, rec in enumerate(load_json_list(path)):
        where = f"{path}: item {i}"
        q = str_field(rec, "question", where)
        sets = []
        for key in ("mc1_targets", "mc2_targets"):
            t = rec.get(key)
            ch = t.get("choices") if isinstance(t, dict) else None
            lab = t.get("labels") if isinstance(t, dict) else None
            if not (isinstance(ch, list) and isinstance(lab, list) and ch and len(ch) == len(lab)):
                raise ValueError(f"{where}: field '{key}' needs equal-length choices and labels")
            if not all(isinstance(c, str) for c in ch) or not set(lab) <= {0, 1} or 1 not in lab:
                raise ValueError(
                    f"{where}: field '{key}' needs string choices and 0/1 labels with a 1"
                )
            sets.append((tuple(ch), tuple(int(x) for x in lab)))
        if sum(sets[0][1]) != 1:
            raise ValueError(f"{where}: field 'mc1_targets' must have exactly one label 1")
        out.append(MCQuestion(q, *sets[0], *sets[1], source=f"{path.name}:{i}"))
    return _split(out, split, str(path))


def read_truthfulqa_gen(data_dir: str | Path, split: str = "test") -> list[TruthfulQAGenItem]:
    """TruthfulQA.csv generation questions with reference answers (';'-separated lists).

    The CSV is parsed by the training data's reader (`trinityx.data.readers.truthfulqa`), so the
    two never disagree on a row; ``split`` here is the evaluation's (last 409 = test)."""
    path = require_file(data_dir, TRUTHFULQA_CSV)
    out = []
    columns = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers")
    for line, rec in truthfulqa_table(path, columns):
        where = f"{path}: row {line}"
        out.append(
            TruthfulQAGenItem(
                str_field(rec, "Question", where),
                str_field(rec, "Best Answer", where),
                tuple(split_answers(str_field(rec, "Correct Answers", where))),
                tuple(split_answers(str_field(rec, "Incorrect Answers", where))),
                rec.get("Category") or "",
                rec.get("Type") or "",
                f"{path.name}:{line}",
            )
        )
    return _split(out, split, str(path))


def truthfulqa_preamble(data_dir: str | Path) -> str:
    """The six-shot QA primer: ``"Q: q1\\nA: a1\\n\\nQ: q2\\nA: a2 ..."`` as in lm-eval-harness."""
    path = require_file(data_dir, TRUTHFULQA_FEWSHOT)
    shots = []
    for i, rec in enumerate(load_json_list(path)):
        where = f"{path}: item {i}"
        shots.append(
            f"Q: {str_field(rec, 'question', where)}\nA: {str_field(rec, 'best_answer', where)}"
        )
    if len(shots) != 6:
        raise ValueError(f"{path}: expected the 6 standard few-shot pairs, found {len(shots)}")
    return "\n\n".join(shots)


def truthfulqa_prompt(question: str, preamble: str) -> str:
    """Harness truthfulqa_mc prompt: primer + ``"\\n\\nQ: question\\nA:"``; choices follow as ``" " + c``."""
    return f"{preamble}\n\nQ: {question}\nA:"


# --------------------------------------------------------------------------- hh-rlhf


def read_hh_rlhf(path: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """hh-rlhf harmless chosen/rejected pairs (final assistant turns sharing a context), read by
    the project's data reader (`trinityx.data.readers.hh_rlhf.read_hh_rlhf`); `path` may be the data dir.
    """
    path = Path(path)
    if path.is_dir():
        path = require_file(path, HH_RLHF_HARMLESS)
    pairs = read_pairs(path)
    return pairs if limit is None else pairs[:limit]
