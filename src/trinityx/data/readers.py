"""Data readers: every supported format in, record types (`trinityx.data.records`) out.

Stages never see raw files: `read_records(path_or_id, kind=...)` picks the reader by `format=` or
by file name, and returns a list of SFTExample / PreferencePair / RoutingExample whose `source` is
"path:line" (JSONL) or "path:row N" (JSON arrays and CSV; N counts records from 1, header excluded).

Formats (`format=` name, what picks it when `format` is not given):
- alpaca (*.json; JSONL rows with instruction/output): instruction [+ "\\n\\n" + input] → output.
- truthfulqa (*.csv): TruthfulQA.csv; split "train" = first 408 rows, "test" = last 409, "all".
  kind="sft": Question → Best Answer; kind="preference": best/correct answer > incorrect answer.
- beavertails_pairs (*.jsonl rows with prompt/safe/unsafe): chosen = safe, rejected = unsafe.
- beavertails_qa (*.jsonl rows with prompt/response/is_safe): sft keeps safe answers only;
  preference pairs a safe with an unsafe answer to the same prompt.
- hh_rlhf (*.jsonl[.gz] whose 'chosen' is a "\\n\\nHuman: ...\\n\\nAssistant: ..." dialogue).
- jsonl (any other *.jsonl[.gz]): the generic schema below.
- hf ("hf:<owner>/<name>", format="hf", or an "<owner>/<name>" that is not a local path): a Hugging
  Face dataset id via `readers_hf.read_hf`.

Generic JSONL schema (one JSON object per line; blank lines ignored; unknown keys allowed):
    SFT         {"prompt": str | [message], "response": str}
                {"messages": [message, ..., {"role": "assistant", "content": <response>}]}
    preference  {"prompt": str | [message], "chosen": str, "rejected": str}
    routing     {"prompt": str | [message], "weights": {dimension: number >= 0}}  (normalised to 1)
                or {"prompt": ..., "dimension": d}, a one-hot target on d
    optional    "system": str        a system message put before the prompt
                "dimension": str     helpful | harmless | honest
                "split": str         "train" | "heldout" | ...; read_records(split=...) keeps matches
    message     {"role": "system" | "user" | "assistant", "content": str}; a prompt list ends with a
                user turn, a system message may only come first.
The requested `kind` decides the schema a row must follow; kind="sft" also accepts preference rows
(the chosen side is learned, unless the row also has a 'response') and kind="routing" accepts any
row with a dimension (one-hot). kind=None keeps each row as it reads: 'weights' → routing,
'chosen'/'rejected' → preference (even with a 'response' too), else SFT.

Errors: a malformed file raises DataError (a ValueError) naming file, line or row, field and fix,
e.g. "data/x.jsonl:17: field 'response' missing (SFT rows need 'prompt' and 'response', or
'messages')". A missing file raises FileNotFoundError; a file with zero records is a DataError.
With skip_bad_rows=True malformed rows are dropped instead, counted, logged as a warning and
reported in the ReadReport passed as `report=`; file-level problems (not JSON at all, missing CSV
columns, no records) are never skipped.
"""

from __future__ import annotations

import re
from contextlib import closing
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
    parse_hh_dialogue,
    split_answers,
    truthfulqa_pairs,
    truthfulqa_rows,
    truthfulqa_sft,
)
from trinityx.data.readers_generic import DEFAULT_DIMENSION, detect_row_format
from trinityx.data.readers_generic import records_from_rows as _records_from_rows
from trinityx.data.readers_hf import HubUnavailableError, read_hf
from trinityx.data.records import PreferencePair, SFTExample

FORMATS: tuple[str, ...] = (
    "alpaca",
    "truthfulqa",
    "beavertails_pairs",
    "beavertails_qa",
    "hh_rlhf",
    "jsonl",
    "hf",
)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w-][\w.-]*")  # owner/name
_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".gz", ".parquet", ".tsv", ".txt")

__all__ = [
    "FORMATS",
    "DataError",
    "HubUnavailableError",
    "ReadReport",
    "detect_format",
    "parse_hh_dialogue",
    "read_alpaca",
    "read_beavertails_pairs",
    "read_beavertails_qa",
    "read_beavertails_qa_pairs",
    "read_hf",
    "read_hh_rlhf",
    "read_jsonl",
    "read_records",
    "read_truthfulqa",
    "read_truthfulqa_pairs",
    "split_answers",
]


def _check_args(kind: str | None, dimension: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)} (or None: as read)")
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(f"dimension={dimension!r} is not one of {', '.join(DIMENSIONS)}")


def _read_rows_file(
    path: str | Path,
    fmt: str,
    kind: str | None,
    split: str | None,
    dimension: str | None,
    skip_bad_rows: bool,
    report: ReadReport | None,
) -> list[Record]:
    """A JSON-array or JSONL file through the row parser of `fmt`."""
    _check_args(kind, dimension)
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
    records = _read_rows_file(path, "alpaca", "sft", None, dimension, skip_bad_rows, report)
    return cast(list[SFTExample], records)


def read_beavertails_pairs(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """BeaverTails {prompt, safe, unsafe} JSONL as pairs (chosen = safe)."""
    records = _read_rows_file(
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
    records = _read_rows_file(path, "beavertails_qa", "sft", None, dimension, skip_bad_rows, report)
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
    records = _read_rows_file(
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
    records = _read_rows_file(path, "hh_rlhf", "preference", None, dimension, skip_bad_rows, report)
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
    return _read_rows_file(path, "jsonl", kind, split, dimension, skip_bad_rows, report)


def _truthfulqa(
    path: str | Path,
    *,
    kind: str | None,
    split: str,
    dimension: str | None,
    pairs_per_question: int,
    skip_bad_rows: bool,
    report: ReadReport | None,
) -> list[Record]:
    _check_args(kind, dimension)
    if pairs_per_question < 1:
        raise ValueError(f"pairs_per_question={pairs_per_question}; it must be at least 1")
    p = check_path(path)
    dim = dimension or DEFAULT_DIMENSION["truthfulqa"]
    sink = RowSink(str(path), skip_bad_rows, report)
    columns = ("Question", "Best Answer")
    if kind == "preference":
        columns += ("Correct Answers", "Incorrect Answers")
    out: list[Record] = []
    for where, row in truthfulqa_rows(p, split, columns, sink):
        try:
            if kind == "preference":
                out.extend(truthfulqa_pairs(row, where, dim, pairs_per_question))
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
    records = _truthfulqa(
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
    records = _truthfulqa(
        path,
        kind="preference",
        split=split,
        dimension=dimension,
        pairs_per_question=pairs_per_question,
        skip_bad_rows=skip_bad_rows,
        report=report,
    )
    return cast(list[PreferencePair], records)


def detect_format(path: str | Path) -> str:
    """The reader `read_records` would pick for a file: by extension, then by the first JSONL row.

    Raises FileNotFoundError for a missing file and DataError for an unknown extension."""
    p = check_path(path)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".json"):
        return "alpaca"
    if name.endswith(".csv"):
        return "truthfulqa"
    if not name.endswith(".jsonl"):
        raise DataError(
            f"{path}: cannot tell the data format from the file name; use .json "
            f"(Alpaca), .csv (TruthfulQA) or .jsonl[.gz], or pass format= one of "
            f"{', '.join(FORMATS)}"
        )
    peek = RowSink(str(path), skip_bad_rows=True, report=None)  # bad lines: the real read reports
    with closing(iter_jsonl(p, peek)) as rows:
        first = next(rows, None)
    return detect_row_format(first[1]) if first is not None else "jsonl"


def read_records(
    path_or_id: str | Path,
    *,
    format: str | None = None,
    kind: str | None = "sft",
    split: str | None = None,
    dimension: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[Record]:
    """Read any supported file or Hugging Face id into records of `kind`.

    format: one of FORMATS, or None to pick by file name / first row (see module docstring).
    kind: "sft" | "preference" | "routing", or None to keep each record as its format reads it;
        preference data read as sft keeps the chosen side, and data with a dimension read as
        routing gets one-hot weights.
    split: TruthfulQA "train" | "test" | "all"; generic JSONL keeps rows whose 'split' matches;
        for "hf:" ids the dataset split (default "train"); other formats are split by file.
    dimension: overrides a format's default label (alpaca helpful, truthfulqa honest, beavertails
        and hh-rlhf harmless); generic rows naming another dimension are left out.
    report: a ReadReport to fill with counts of records, skipped bad rows and filtered rows.
    """
    _check_args(kind, dimension)
    src = str(path_or_id)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {', '.join(FORMATS)}")
    if format == "hf" or src.startswith("hf:"):
        return read_hf(
            src.removeprefix("hf:"),
            split or "train",
            kind,
            dimension=dimension,
            skip_bad_rows=skip_bad_rows,
            report=report,
        )
    if (
        format is None
        and not Path(src).exists()
        and _HUB_ID.fullmatch(src)
        and not src.lower().endswith(_FILE_SUFFIXES)
    ):
        try:  # "owner/name" with no such local file: a Hugging Face dataset id
            return read_hf(
                src,
                split or "train",
                kind,
                dimension=dimension,
                skip_bad_rows=skip_bad_rows,
                report=report,
            )
        except (FileNotFoundError, HubUnavailableError) as e:
            raise type(e)(
                f"{src!r} is not a local file, so it was read as a Hugging Face dataset id: {e}"
            ) from e
    fmt = format or detect_format(path_or_id)
    if fmt == "truthfulqa":
        return _truthfulqa(
            path_or_id,
            kind=kind,
            split=split or "all",
            dimension=dimension,
            pairs_per_question=1,
            skip_bad_rows=skip_bad_rows,
            report=report,
        )
    return _read_rows_file(path_or_id, fmt, kind, split, dimension, skip_bad_rows, report)
