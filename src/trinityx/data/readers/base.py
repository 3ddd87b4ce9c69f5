"""Shared machinery of the data readers: the error type, the read report, file opening and the
skip-or-raise policy for bad rows, field checks, record-kind conversion, and the file loop every
dataset reader runs (`read_file`: open a JSON array or JSONL file, parse its rows, finish).

Every reader goes through `RowSink`, so "a malformed row is an error unless `skip_bad_rows`, and
skipped rows are always counted and logged" is decided in one place, and every message names the
file, the line or row, the field and the fix.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from trinityx import DIMENSIONS
from trinityx.data.records import Message, PreferencePair, RoutingExample, SFTExample

logger = logging.getLogger("trinityx.data")

Kind = Literal["sft", "preference", "routing"]
KINDS: tuple[str, ...] = ("sft", "preference", "routing")
Record = SFTExample | PreferencePair | RoutingExample
ROLES: tuple[str, ...] = ("system", "user", "assistant")
MAX_KEPT_ERRORS = 20  # messages kept in a ReadReport; the count is always exact


class DataError(ValueError):
    """A data file (or row) is malformed; the message names file, line/row, field and the fix."""


@dataclass
class ReadReport:
    """What one read kept, skipped and filtered out.

    Pass one as `report=` to any reader to learn what `skip_bad_rows=True` dropped (the same count
    is also logged as a warning), so skipped rows are never silent.
    """

    source: str = ""  # the file or "hf:<id>" that was read
    records: int = 0  # records returned
    skipped: int = 0  # malformed rows dropped because skip_bad_rows=True
    filtered: int = 0  # well-formed rows left out by a split/dimension filter (not errors)
    errors: list[str] = field(default_factory=list)  # messages of skipped rows, first 20 kept


class RowSink:
    """Applies the bad-row policy of one read: raise at once, or count, remember and go on."""

    def __init__(self, source: str, skip_bad_rows: bool, report: ReadReport | None) -> None:
        self.source = source
        self.skip_bad_rows = skip_bad_rows
        self.report = report if report is not None else ReadReport()
        self.report.source = source
        self.rows = 0  # rows seen, good or bad

    def bad(self, err: DataError) -> None:
        """Raise `err`, or (with skip_bad_rows) record it and let the caller continue."""
        if not self.skip_bad_rows:
            raise DataError(
                f"{err} [fix the row, or pass skip_bad_rows=True to skip and count malformed rows]"
            ) from None
        self.report.skipped += 1
        if len(self.report.errors) < MAX_KEPT_ERRORS:
            self.report.errors.append(str(err))

    def finish(self, records: list[Any], empty_hint: str = "") -> list[Any]:
        """Log the skip count and refuse an empty result: zero records is never what a stage wants."""
        rep = self.report
        rep.records = len(records)
        if rep.skipped:
            logger.warning(
                "%s: skipped %d malformed row(s) of %d (skip_bad_rows=True); first: %s",
                self.source,
                rep.skipped,
                self.rows,
                rep.errors[0] if rep.errors else "",
            )
        if not records:
            if self.rows == 0:
                why = "the file has no data rows"
            elif rep.skipped == self.rows:
                why = f"all {rep.skipped} row(s) were malformed and skipped; first: {rep.errors[0]}"
            else:
                why = f"{rep.filtered} row(s) read, none matched the filter"
            raise DataError(f"{self.source}: no records ({why}){empty_hint}")
        return records


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


def get_str(row: dict[str, Any], key: str, where: str, need: str, *, empty_ok: bool = False) -> str:
    """row[key] as a string, or a DataError naming the field, what was found and `need` (the fix)."""
    if key not in row:
        raise DataError(f"{where}: field {key!r} missing ({need})")
    value = row[key]
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {key!r} must be a string, got {type(value).__name__} ({need})"
        )
    if not empty_ok and not value.strip():
        raise DataError(f"{where}: field {key!r} is empty ({need})")
    return value


def check_dimension(value: Any, where: str, key: str = "dimension") -> str:
    """A dimension name, checked against DIMENSIONS so a typo cannot create a fourth expert."""
    if not isinstance(value, str) or value not in DIMENSIONS:
        raise DataError(
            f"{where}: field {key!r} is {value!r}; expected one of {', '.join(DIMENSIONS)}"
        )
    return value


def check_messages(value: Any, where: str, key: str, *, last_role: str) -> tuple[Message, ...]:
    """A chat-message list validated into records' tuple form; it must end with `last_role`."""
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{where}: field {key!r} must be a non-empty list of "
            '{"role": ..., "content": ...} objects'
        )
    msgs: list[Message] = []
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise DataError(
                f'{where}: field {key!r} item {i} must be {{"role": one of '
                f'{"/".join(ROLES)}, "content": string}}, got {json.dumps(m)[:80]}'
            )
        if m["role"] == "system" and i != 0:
            raise DataError(
                f"{where}: field {key!r} item {i}: a system message may only come first"
            )
        msgs.append({"role": m["role"], "content": m["content"]})
    if msgs[-1]["role"] != last_role:
        raise DataError(
            f"{where}: field {key!r} must end with a {last_role!r} message, "
            f"got {msgs[-1]['role']!r}"
        )
    return tuple(msgs)


def convert(record: Record, kind: str | None, where: str) -> Record:
    """Turn a record into the requested kind (None: keep it as read) where that is meaningful.

    Preference → SFT keeps the chosen side (SFT on safe answers); SFT/preference → routing is a
    one-hot target on the record's dimension (so expert data doubles as router data). Anything else
    cannot be made up from the data, so it is an error that says which rows are needed.
    """
    if kind is None:
        return record
    if kind == "sft":
        if isinstance(record, SFTExample):
            return record
        if isinstance(record, PreferencePair):
            return record.as_sft()
    elif kind == "preference":
        if isinstance(record, PreferencePair):
            return record
    elif kind == "routing":
        if isinstance(record, RoutingExample):
            return record
        if record.dimension is None:
            raise DataError(
                f"{where}: cannot make a routing example: the row has no dimension "
                "(give a 'dimension' field or pass dimension=...)"
            )
        return RoutingExample(record.messages, {record.dimension: 1.0}, record.source)
    else:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    have = type(record).__name__
    need = {
        "sft": "'prompt' and 'response' (or 'messages')",
        "preference": "'prompt', 'chosen' and 'rejected'",
        "routing": "'prompt' and 'weights'",
    }[kind]
    raise DataError(f"{where}: a {have} row cannot be read as kind={kind!r}; rows need {need}")


def check_args(kind: str | None, dimension: str | None) -> None:
    """Raise ValueError for an unknown record kind or dimension."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)} (or None: as read)")
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(f"dimension={dimension!r} is not one of {', '.join(DIMENSIONS)}")


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


# A dataset's row reader: (where, row) pairs -> records of `kind`; bad rows go through `sink`.
# Called as to_records(rows, kind=..., sink=..., split=..., dimension=...).
RowReader = Callable[..., list[Record]]


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
