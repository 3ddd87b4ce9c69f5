"""TruthfulQA.csv (817 questions) for the honest expert: Question → Best Answer SFT examples, or
(true > false) answer pairs. The split is positional, as in H3Fusion: the first 408 rows train,
the last 409 test. The CSV itself is parsed here only (`truthfulqa_table`); the evaluation's
generation reader reads the same table.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from trinityx.data.readers.base import (
    DataError,
    ReadReport,
    Record,
    RowSink,
    check_args,
    convert,
    get_str,
)
from trinityx.data.readers.files import check_path, open_text
from trinityx.data.records import PreferencePair, SFTExample, user_prompt

DIMENSION = "honest"
TRUTHFULQA_ROWS = 817
TRUTHFULQA_TRAIN_ROWS = 408  # H3Fusion's split: first 408 rows in file order train, last 409 test
TRUTHFULQA_SPLITS = ("train", "test", "all")


def split_answers(text: str) -> list[str]:
    """TruthfulQA's ';'-separated answer list, stripped, empties dropped."""
    return [a.strip() for a in text.split(";") if a.strip()]


def truthfulqa_table(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """Every data row of a TruthfulQA CSV with the line it ends on: the one place the CSV is parsed.

    The header must hold `columns`; a row with more or fewer fields than the header is returned as
    the csv module reads it (a None key or None values), for the caller's bad-row policy.
    """
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise DataError(
                    f"{path}: the file is empty (a TruthfulQA CSV starts with the header "
                    f"{','.join(columns)})"
                )
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: not a TruthfulQA CSV: column(s) {', '.join(map(repr, missing))} "
                    f"missing from the header (found {', '.join(header)})"
                )
            rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e}); check quoting around that line") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); re-save the file as UTF-8") from e
    return rows


def truthfulqa_rows(
    path: Path, split: str, columns: tuple[str, ...], sink: RowSink
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ("path:row N", row) for the rows of `split`, cut by file order before any validation.

    The split is positional on purpose (no shuffling), so that results stay comparable with prior
    work; skipping a malformed row therefore never moves a question between train and test.
    """
    if split not in TRUTHFULQA_SPLITS:
        raise ValueError(
            f"TruthfulQA split={split!r}; expected one of {', '.join(TRUTHFULQA_SPLITS)}"
        )
    rows = truthfulqa_table(path, columns)
    indexed = [(n, row) for n, (_, row) in enumerate(rows, start=1)]
    if split != "all":
        if len(rows) != TRUTHFULQA_ROWS:
            raise DataError(
                f"{path}: has {len(rows)} rows; the positional train/test split (first "
                f"{TRUTHFULQA_TRAIN_ROWS} / last {TRUTHFULQA_ROWS - TRUTHFULQA_TRAIN_ROWS}) is defined "
                f"for the {TRUTHFULQA_ROWS}-question TruthfulQA.csv; use split='all' for other files"
            )
        cut = TRUTHFULQA_TRAIN_ROWS
        indexed = indexed[:cut] if split == "train" else indexed[cut:]
    for n, row in indexed:
        sink.rows += 1
        where = f"{path}:row {n}"
        if None in row or any(v is None for v in row.values()):
            sink.bad(
                DataError(
                    f"{where}: the row has {'more' if None in row else 'fewer'} fields "
                    "than the header; quote fields that contain commas"
                )
            )
            continue
        yield where, row


def truthfulqa_sft(row: dict[str, str], where: str, dimension: str | None) -> SFTExample:
    """Question → Best Answer: the honest expert learns the calibrated, non-imitative answer."""
    need = "TruthfulQA rows need 'Question' and 'Best Answer'"
    question = get_str(row, "Question", where, need)
    best = get_str(row, "Best Answer", where, need)
    return SFTExample(user_prompt(question.strip()), best.strip(), dimension, where)


def truthfulqa_sft_all(row: dict[str, str], where: str, dimension: str | None) -> list[SFTExample]:
    """Question → each correct answer (Best Answer first, duplicates dropped): more honest targets
    per question. "I have no comment" is kept only when it is the sole correct answer, since as a
    target among informative ones it teaches the uninformative evasion that TI charges."""
    need = "TruthfulQA rows need 'Question', 'Best Answer' and 'Correct Answers'"
    question = get_str(row, "Question", where, need).strip()
    best = get_str(row, "Best Answer", where, need).strip()
    correct = split_answers(get_str(row, "Correct Answers", where, need, empty_ok=True))
    answers = list(dict.fromkeys([best, *correct]))
    informative = [a for a in answers if a.lower().rstrip(".") != "i have no comment"]
    msgs = user_prompt(question)
    return [SFTExample(msgs, a, dimension, where) for a in informative or answers]


def truthfulqa_pairs(
    row: dict[str, str], where: str, dimension: str | None, pairs_per_question: int
) -> list[PreferencePair]:
    """Up to `pairs_per_question` (true, false) pairs, deterministic: the i-th pair takes true
    answer i (Best Answer first, then the other Correct Answers) and incorrect answer i, each list
    cycled when it is the shorter one."""
    need = "TruthfulQA rows need 'Question', 'Best Answer', 'Correct Answers', 'Incorrect Answers'"
    question = get_str(row, "Question", where, need).strip()
    best = get_str(row, "Best Answer", where, need).strip()
    correct = split_answers(get_str(row, "Correct Answers", where, need, empty_ok=True))
    incorrect = split_answers(get_str(row, "Incorrect Answers", where, need))
    if not incorrect:
        raise DataError(
            f"{where}: field 'Incorrect Answers' has no answers ({need}, ';'-separated)"
        )
    trues = [best] + [c for c in correct if c != best]
    n = min(pairs_per_question, max(len(trues), len(incorrect)))
    msgs = user_prompt(question)
    return [
        PreferencePair(msgs, trues[i % len(trues)], incorrect[i % len(incorrect)], dimension, where)
        for i in range(n)
    ]


def read_truthfulqa_csv(
    path: str | Path,
    *,
    kind: str | None,
    split: str,
    dimension: str | None,
    pairs_per_question: int,
    skip_bad_rows: bool,
    report: ReadReport | None,
    answers: str = "best",
) -> list[Record]:
    """TruthfulQA.csv as SFT examples or (true > false) pairs, per `kind`; `answers="all"` makes
    one SFT example per correct answer instead of the Best Answer only."""
    check_args(kind, dimension)
    if pairs_per_question < 1:
        raise ValueError(f"pairs_per_question={pairs_per_question}; it must be at least 1")
    p = check_path(path)
    dim = dimension or DIMENSION
    sink = RowSink(str(path), skip_bad_rows, report)
    columns = ("Question", "Best Answer")
    if answers not in ("best", "all"):
        raise ValueError(f"answers={answers!r}; expected 'best' or 'all'")
    if kind == "preference":
        columns += ("Correct Answers", "Incorrect Answers")
    elif answers == "all":
        columns += ("Correct Answers",)
    out: list[Record] = []
    for where, row in truthfulqa_rows(p, split, columns, sink):
        try:
            if kind == "preference":
                out.extend(truthfulqa_pairs(row, where, dim, pairs_per_question))
            elif answers == "all":
                out.extend(convert(r, kind, where) for r in truthfulqa_sft_all(row, where, dim))
            else:
                out.append(convert(truthfulqa_sft(row, where, dim), kind, where))
        except DataError as e:
            sink.bad(e)
    return sink.finish(out)


def read_truthfulqa(
    path: str | Path,
    *,
    split: str = "all",
    dimension: str = "honest",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[SFTExample]:
    """TruthfulQA.csv as Question → Best Answer SFT examples for the honest expert.

    split: "train" (first 408 rows in file order), "test" (last 409) or "all"."""
    records = read_truthfulqa_csv(
        path,
        kind="sft",
        split=split,
        dimension=dimension,
        pairs_per_question=1,
        skip_bad_rows=skip_bad_rows,
        report=report,
    )
    return cast(list[SFTExample], records)


def read_truthfulqa_pairs(
    path: str | Path,
    *,
    split: str = "all",
    pairs_per_question: int = 1,
    dimension: str = "honest",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """TruthfulQA.csv as (true > false) answer pairs; pair i takes true answer i (Best Answer
    first) and incorrect answer i, so pairs_per_question=1 gives Best Answer > first incorrect."""
    records = read_truthfulqa_csv(
        path,
        kind="preference",
        split=split,
        dimension=dimension,
        pairs_per_question=pairs_per_question,
        skip_bad_rows=skip_bad_rows,
        report=report,
    )
    return cast(list[PreferencePair], records)
