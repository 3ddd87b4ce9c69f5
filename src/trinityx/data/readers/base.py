"""Shared machinery of the data readers: the error type, the read report, the skip-or-raise
policy for bad rows, field checks and record-kind conversion (`files` opens files and loops rows).

Every reader goes through `RowSink`, so "a malformed row is an error unless `skip_bad_rows`, and
skipped rows are always counted and logged" is decided in one place, and every message names the
file, the line or row, the field and the fix.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

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
