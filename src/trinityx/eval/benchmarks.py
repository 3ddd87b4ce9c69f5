"""Readers for the evaluation sets and the local-judge training files, given a data directory.

Each reader turns one public file layout (see the data README) into plain records, so evaluation code
never parses raw files. Every malformed input raises ``ValueError`` naming the file, the line/row/item
and the field, so a broken download is fixed at the edge instead of surfacing as a wrong number.

Splits follow the prior MoE work (H3Fusion): TruthfulQA in file order, first 408 = train, last
409 = test, no shuffling.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trinityx.data.records import MCQuestion, PreferencePair

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


@dataclass(frozen=True)
class PairwiseAnnotation:
    """An AlpacaEval judgement: output_2 vs output_1 with preference in [1, 2] (None = missing)."""

    instruction: str
    output_1: str
    output_2: str
    preference: float | None
    source: str = ""


@dataclass(frozen=True)
class JudgeExample:
    """A TruthfulQA judge fine-tuning row: question, answer and the yes/no label."""

    question: str
    answer: str
    label: int  # 1 = " yes"
    source: str = ""


# --------------------------------------------------------------------------- low-level helpers


def _path(data_dir: str | Path, rel: str) -> Path:
    p = Path(data_dir) / rel
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: pass the data directory that holds {rel}")
    return p


def _load_json_list(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, record)`` for each non-blank line of a .jsonl or .jsonl.gz file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def _field(rec: dict, name: str, where: str, allow_empty: bool = False) -> str:
    v = rec.get(name)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        got = "missing" if name not in rec else f"{type(v).__name__} {str(v)[:40]!r}"
        raise ValueError(f"{where}: field '{name}' must be a non-empty string ({got})")
    return v


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


# --------------------------------------------------------------------------- AlpacaEval


def read_alpaca_eval(data_dir: str | Path, limit: int | None = None) -> list[AlpacaEvalItem]:
    """AlpacaEval prompts with text-davinci-003 reference outputs, in file order (first ``limit``)."""
    path = _path(data_dir, ALPACA_EVAL_REFERENCE)
    items = []
    for i, rec in enumerate(_load_json_list(path)[:limit]):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected an object with instruction/output")
        items.append(
            AlpacaEvalItem(
                _field(rec, "instruction", where),
                _field(rec, "output", where, allow_empty=True),
                str(rec.get("dataset", "")),
                f"{path.name}:{i}",
            )
        )
    return items


def read_pairwise_annotations(path: str | Path) -> list[PairwiseAnnotation]:
    """AlpacaEval annotation file: instruction, output_1, output_2, preference.

    Preference 0 (AlpacaEval's legacy draw) becomes 1.5; None/NaN stays None (no judgement).
    """
    path = Path(path)
    out = []
    for i, rec in enumerate(_load_json_list(path)):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected an object")
        pref = rec.get("preference", "missing")
        if pref is not None and not isinstance(pref, (int, float)) or isinstance(pref, bool):
            raise ValueError(f"{where}: field 'preference' must be a number in [1, 2] ({pref!r})")
        if pref is not None and pref == pref:  # not NaN
            pref = 1.5 if pref == 0 else float(pref)
            if not 1.0 <= pref <= 2.0:
                raise ValueError(f"{where}: field 'preference' = {pref} is outside [1, 2]")
        else:
            pref = None
        out.append(
            PairwiseAnnotation(
                _field(rec, "instruction", where),
                _field(rec, "output_1", where, allow_empty=True),
                _field(rec, "output_2", where, allow_empty=True),
                pref,
                f"{path.name}:{i}",
            )
        )
    return out


# --------------------------------------------------------------------------- BeaverTails


def read_beavertails_eval(
    data_dir: str | Path, limit: int | None = None
) -> list[BeaverTailsPrompt]:
    """BeaverTails-Evaluation prompts; ``limit`` keeps the categories balanced.

    The limit is spread evenly over categories (the first categories in file order get the
    remainder) and within a category the first prompts in file order are kept, so a small run is
    deterministic and still covers every harm category. Output keeps file order.
    """
    path = _path(data_dir, BEAVERTAILS_EVAL)
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
                    _field(rec, "prompt", where),
                    _field(rec, "category", where),
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


def read_spard_pairs(path: str | Path) -> list[PreferencePair]:
    """SPARD BeaverTails pairs (prompt, safe, unsafe) as preference pairs safe > unsafe."""
    from trinityx.data.records import user_prompt

    path = Path(path)
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        out.append(
            PreferencePair(
                user_prompt(_field(rec, "prompt", where)),
                _field(rec, "safe", where),
                _field(rec, "unsafe", where),
                "harmless",
                where,
            )
        )
    return out


# --------------------------------------------------------------------------- TruthfulQA


def read_truthfulqa_mc(data_dir: str | Path, split: str = "test") -> list[MCQuestion]:
    """TruthfulQA MC1/MC2 targets; ``split`` = 'test' (last 409), 'train' (first 408) or 'all'."""
    path = _path(data_dir, TRUTHFULQA_MC)
    out = []
    for i, rec in enumerate(_load_json_list(path)):
        where = f"{path}: item {i}"
        q = _field(rec, "question", where)
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


def _answers(cell: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in cell.split(";") if a.strip())


def read_truthfulqa_gen(data_dir: str | Path, split: str = "test") -> list[TruthfulQAGenItem]:
    """TruthfulQA.csv generation questions with reference answers (';'-separated lists)."""
    path = _path(data_dir, TRUTHFULQA_CSV)
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"Question", "Best Answer", "Correct Answers", "Incorrect Answers"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {sorted(missing)}")
        for rec in reader:
            where = f"{path}: row {reader.line_num}"
            out.append(
                TruthfulQAGenItem(
                    _field(rec, "Question", where),
                    _field(rec, "Best Answer", where),
                    _answers(_field(rec, "Correct Answers", where)),
                    _answers(_field(rec, "Incorrect Answers", where)),
                    rec.get("Category") or "",
                    rec.get("Type") or "",
                    f"{path.name}:{reader.line_num}",
                )
            )
    return _split(out, split, str(path))


def truthfulqa_preamble(data_dir: str | Path) -> str:
    """The six-shot QA primer: ``"Q: q1\\nA: a1\\n\\nQ: q2\\nA: a2 ..."`` as in lm-eval-harness."""
    path = _path(data_dir, TRUTHFULQA_FEWSHOT)
    shots = []
    for i, rec in enumerate(_load_json_list(path)):
        where = f"{path}: item {i}"
        shots.append(f"Q: {_field(rec, 'question', where)}\nA: {_field(rec, 'best_answer', where)}")
    if len(shots) != 6:
        raise ValueError(f"{path}: expected the 6 standard few-shot pairs, found {len(shots)}")
    return "\n\n".join(shots)


def truthfulqa_prompt(question: str, preamble: str) -> str:
    """Harness truthfulqa_mc prompt: primer + ``"\\n\\nQ: question\\nA:"``; choices follow as ``" " + c``."""
    return f"{preamble}\n\nQ: {question}\nA:"


_QA_RE = re.compile(r"^Q: (?P<q>.*?)\nA:(?P<a>.*)\n(?P<tag>True|Helpful):$", re.DOTALL)


def read_judge_finetune(path: str | Path) -> list[JudgeExample]:
    """TruthfulQA GPT-judge / GPT-info rows ``{"prompt": "Q: ..\\nA: ..\\nTrue:", "completion": " yes"}``.

    The answer is everything after the first ``"\\nA:"`` (a few generated answers contain more
    ``"A:"`` lines; they belong to the answer being judged).
    """
    path = Path(path)
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        m = _QA_RE.match(_field(rec, "prompt", where))
        if m is None:
            raise ValueError(f"{where}: field 'prompt' must look like 'Q: ...\\nA: ...\\nTrue:'")
        comp = str(rec.get("completion", "")).strip().lower()
        if comp not in ("yes", "no"):
            raise ValueError(f"{where}: field 'completion' must be ' yes' or ' no' ({comp!r})")
        out.append(JudgeExample(m["q"].strip(), m["a"].strip(), int(comp == "yes"), where))
    return out


# --------------------------------------------------------------------------- hh-rlhf


_TURN_RE = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_dialogue(text: str, where: str) -> list[dict[str, str]]:
    """Split an hh-rlhf transcript "\\n\\nHuman: ..\\n\\nAssistant: .." into chat messages."""
    parts = _TURN_RE.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError(f"{where}: dialogue must start with '\\n\\nHuman: ' turns")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [
        {"role": roles[r], "content": c.strip()}
        for r, c in zip(parts[1::2], parts[2::2], strict=True)
    ]


def read_hh_rlhf(path: str | Path, limit: int | None = None) -> list[PreferencePair]:
    """hh-rlhf chosen/rejected dialogues as pairs of final assistant turns sharing a context.

    The context is the chosen dialogue minus its last assistant turn (in a handful of rows the
    rejected context differs slightly; the final turns are what the preference is about).
    """
    path = Path(path)
    if path.is_dir():
        path = _path(path, HH_RLHF_HARMLESS)
    out = []
    for n, rec in iter_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:{n}"
        sides = []
        for key in ("chosen", "rejected"):
            msgs = parse_hh_dialogue(_field(rec, key, where), f"{where}: field '{key}'")
            if msgs[-1]["role"] != "assistant":
                raise ValueError(f"{where}: field '{key}' must end with an Assistant turn")
            sides.append(msgs)
        ctx = tuple(sides[0][:-1])
        out.append(
            PreferencePair(ctx, sides[0][-1]["content"], sides[1][-1]["content"], "harmless", where)
        )
    return out
