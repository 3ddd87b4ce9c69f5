"""One named reader per file format (`read_alpaca`, `read_truthfulqa`, `read_hh_rlhf`, ...).

Each opens a file, runs the row parsers of `readers_formats` through the generic row dispatch of
`readers_generic`, and applies the skip-or-raise policy of `readers_base.RowSink`. `readers.py`
picks among them by format name, file name or first row (`read_records`) and re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from trinityx import DIMENSIONS
from trinityx.data.readers_base import (
    KINDS,
    DataError,
    ReadReport,
    Record,
    RowSink,
    check_path,
    convert,
    iter_jsonl,
)
from trinityx.data.readers_formats import (
    iter_json_array,
    truthfulqa_pairs,
    truthfulqa_rows,
    truthfulqa_sft,
    truthfulqa_sft_all,
)
from trinityx.data.readers_generic import DEFAULT_DIMENSION
from trinityx.data.readers_generic import records_from_rows as _records_from_rows
from trinityx.data.records import PreferencePair, SFTExample


def check_args(kind: str | None, dimension: str | None) -> None:
    """Raise ValueError for an unknown record kind or dimension."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)} (or None: as read)")
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(f"dimension={dimension!r} is not one of {', '.join(DIMENSIONS)}")


def read_rows_file(
    path: str | Path,
    fmt: str,
    kind: str | None,
    split: str | None,
    dimension: str | None,
    skip_bad_rows: bool,
    report: ReadReport | None,
) -> list[Record]:
    """A JSON-array or JSONL file through the row parser of `fmt`."""
    check_args(kind, dimension)
    p = check_path(path)
    sink = RowSink(str(path), skip_bad_rows, report)
    is_array = p.name.lower().removesuffix(".gz").endswith(".json")
    rows = iter_json_array(p, sink) if is_array else iter_jsonl(p, sink)
    records = _records_from_rows(rows, fmt, kind=kind, sink=sink, split=split, dimension=dimension)
    hint = ""
    if split is not None or dimension is not None:
        hint = f"; filter split={split!r} dimension={dimension!r}"
    return sink.finish(records, hint)


def read_alpaca(
    path: str | Path,
    *,
    dimension: str = "helpful",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[SFTExample]:
    """Alpaca {instruction, input, output} records (a .json array, or .jsonl rows) as SFT."""
    records = read_rows_file(path, "alpaca", "sft", None, dimension, skip_bad_rows, report)
    return cast(list[SFTExample], records)


def read_beavertails_pairs(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """BeaverTails {prompt, safe, unsafe} JSONL as pairs (chosen = safe)."""
    records = read_rows_file(
        path, "beavertails_pairs", "preference", None, dimension, skip_bad_rows, report
    )
    return cast(list[PreferencePair], records)


def read_beavertails_qa(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[SFTExample]:
    """BeaverTails 30k/330k {prompt, response, is_safe} rows: the safe answers, as SFT.

    Unsafe rows are counted in report.filtered, never learned from."""
    records = read_rows_file(path, "beavertails_qa", "sft", None, dimension, skip_bad_rows, report)
    return cast(list[SFTExample], records)


def read_beavertails_qa_pairs(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """BeaverTails labelled rows paired per prompt: i-th safe answer > i-th unsafe answer.

    Rows of prompts lacking a safe or an unsafe answer are counted in report.filtered."""
    records = read_rows_file(
        path, "beavertails_qa", "preference", None, dimension, skip_bad_rows, report
    )
    return cast(list[PreferencePair], records)


def read_hh_rlhf(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """Anthropic hh-rlhf {chosen, rejected} dialogues (.jsonl or .jsonl.gz) as multi-turn pairs."""
    records = read_rows_file(path, "hh_rlhf", "preference", None, dimension, skip_bad_rows, report)
    return cast(list[PreferencePair], records)


def read_jsonl(
    path: str | Path,
    *,
    kind: str | None = "sft",
    split: str | None = None,
    dimension: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[Record]:
    """Generic-schema JSONL (see the module docstring) as records of `kind`.

    `split` keeps rows whose 'split' field equals it (rows without one are left out); `dimension`
    labels rows without one and leaves out rows naming another. Left-out rows count in
    report.filtered."""
    return read_rows_file(path, "jsonl", kind, split, dimension, skip_bad_rows, report)


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
    dim = dimension or DEFAULT_DIMENSION["truthfulqa"]
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
