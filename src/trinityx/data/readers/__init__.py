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
  Face dataset id via `readers.hf.read_hf`.

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

One file per data set holds its row parser and its named reader (`alpaca.read_alpaca`,
`truthfulqa.read_truthfulqa`, `beavertails.read_beavertails_pairs`, `hh_rlhf.read_hh_rlhf`,
`generic.read_jsonl`, `hf.read_hf`); `base` has the shared error/report/bad-row machinery,
`files` the file loop they all run (`read_file`), `formats` the table of row formats. This module
picks among them.
"""

from __future__ import annotations

import re
from contextlib import closing
from functools import partial
from pathlib import Path

from trinityx.data.readers.base import DataError, ReadReport, Record, RowSink, check_args
from trinityx.data.readers.files import check_path, iter_jsonl, read_file
from trinityx.data.readers.formats import detect_row_format, records_from_rows
from trinityx.data.readers.hf import HubUnavailableError, read_hf
from trinityx.data.readers.truthfulqa import read_truthfulqa_csv

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
    answers: str = "best",
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
    answers: TruthfulQA SFT targets, "best" (Best Answer) or "all" (one example per correct answer).
    """
    check_args(kind, dimension)
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
        return read_truthfulqa_csv(
            path_or_id,
            kind=kind,
            split=split or "all",
            dimension=dimension,
            pairs_per_question=1,
            skip_bad_rows=skip_bad_rows,
            report=report,
            answers=answers,
        )
    if answers != "best":
        raise ValueError(
            f"{src}: answers={answers!r} applies to TruthfulQA CSVs only (this file reads as "
            f"format {fmt!r}); remove `answers` from this data source"
        )
    to_records = partial(records_from_rows, fmt=fmt)
    return read_file(path_or_id, to_records, kind, split, dimension, skip_bad_rows, report)
