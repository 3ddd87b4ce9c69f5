"""Opening data files and looping over their rows, shared by every data set's reader.

`read_file` is the one file loop: check the arguments and the path, iterate a JSON array
(``*.json``) or JSONL (``*.jsonl[.gz]``) file through the bad-row policy of `base.RowSink`, hand
the rows to the data set's row reader, and refuse an empty result.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from trinityx.data.readers.base import DataError, ReadReport, Record, RowSink, check_args, convert

# A data set's row reader: (where, row) pairs -> records of `kind`; bad rows go through `sink`.
# Called as to_records(rows, kind=..., sink=..., split=..., dimension=...).
RowReader = Callable[..., list[Record]]


def check_path(path: str | Path) -> Path:
    """The path as a Path, or FileNotFoundError naming it (before any format guessing)."""
    p = Path(path)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "does not exist"
        raise FileNotFoundError(f"data file {str(path)!r} {what}")
    return p


def open_text(path: Path) -> TextIO:
    """Open a UTF-8 text file, transparently gunzipping `*.gz` (hh-rlhf ships as .jsonl.gz)."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_jsonl(path: Path, sink: RowSink) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("path:line", object) for each non-blank line; bad JSON goes through the sink."""
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                sink.rows += 1
                where = f"{path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    sink.bad(
                        DataError(
                            f"{where}: invalid JSON ({e.msg} at column {e.colno}); each line of a "
                            "JSONL file must be one complete JSON object"
                        )
                    )
                    continue
                if not isinstance(obj, dict):
                    sink.bad(
                        DataError(
                            f"{where}: expected a JSON object ({{...}}), got {type(obj).__name__}"
                        )
                    )
                    continue
                yield where, obj
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8"
        ) from e
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: not a valid gzip file ({e}); decompress it or fix the .gz extension"
        ) from e


def iter_json_array(path: Path, sink: RowSink) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("path:row N", object) for a JSON file holding one array of objects (Alpaca's layout)."""
    try:
        with open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno}); "
            "an Alpaca file is one JSON array of {instruction, input, output} objects"
        ) from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); re-save the file as UTF-8") from e
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON array of {{instruction, input, output}} objects, "
            f"got a JSON {type(data).__name__}; for one object per line use .jsonl"
        )
    for i, obj in enumerate(data, start=1):
        sink.rows += 1
        where = f"{path}:row {i}"
        if not isinstance(obj, dict):
            sink.bad(DataError(f"{where}: expected a JSON object, got {type(obj).__name__}"))
            continue
        yield where, obj


def parse_rows(
    rows: Iterable[tuple[str, dict[str, Any]]],
    parse: Callable[[dict[str, Any], str], Record | None],
    kind: str | None,
    sink: RowSink,
) -> list[Record]:
    """The loop of a row-at-a-time format: parse each row (None = valid but filtered out, counted
    in report.filtered), convert it to `kind`, and hand malformed rows to the sink."""
    out: list[Record] = []
    for where, row in rows:
        try:
            rec = parse(row, where)
            if rec is None:
                sink.report.filtered += 1
                continue
            out.append(convert(rec, kind, where))
        except DataError as e:
            sink.bad(e)
    return out


def one_record_per_row(
    parse: Callable[[dict[str, Any], str, str | None], Record | None], default_dimension: str
) -> RowReader:
    """The row reader of a format whose every row is one record: ``parse(row, where, dimension)``
    with the caller's dimension, or the format's own (alpaca → helpful, hh-rlhf → harmless, ...)."""

    def to_records(
        rows: Iterable[tuple[str, dict[str, Any]]],
        *,
        kind: str | None,
        sink: RowSink,
        split: str | None = None,
        dimension: str | None = None,
    ) -> list[Record]:
        dim = dimension if dimension is not None else default_dimension
        return parse_rows(rows, lambda row, where: parse(row, where, dim), kind, sink)

    return to_records


def read_file(
    path: str | Path,
    to_records: RowReader,
    kind: str | None,
    split: str | None,
    dimension: str | None,
    skip_bad_rows: bool,
    report: ReadReport | None,
) -> list[Record]:
    """A JSON-array (``*.json``) or JSONL file through a dataset's row reader, with the file-level
    checks (arguments, missing file, zero records) every format shares."""
    check_args(kind, dimension)
    p = check_path(path)
    sink = RowSink(str(path), skip_bad_rows, report)
    is_array = p.name.lower().removesuffix(".gz").endswith(".json")
    rows = iter_json_array(p, sink) if is_array else iter_jsonl(p, sink)
    records = to_records(rows, kind=kind, sink=sink, split=split, dimension=dimension)
    hint = ""
    if split is not None or dimension is not None:
        hint = f"; filter split={split!r} dimension={dimension!r}"
    return sink.finish(records, hint)
