"""The row formats, by name: which reader parses a row, and which format a row is from its keys.

Local files (`trinityx.data.readers.read_records`) and Hugging Face datasets (`readers.hf`) share
this table, so a Hub copy of BeaverTails or hh-rlhf gives exactly the records its local file would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trinityx.data.readers import alpaca, beavertails, generic, hh_rlhf
from trinityx.data.readers.base import Record, RowSink
from trinityx.data.readers.files import RowReader

ROW_READERS: dict[str, RowReader] = {
    "alpaca": alpaca.rows_to_records,
    "beavertails_pairs": beavertails.pair_rows_to_records,
    "beavertails_qa": beavertails.qa_rows_to_records,
    "hh_rlhf": hh_rlhf.rows_to_records,
    "jsonl": generic.rows_to_records,
}
ROW_FORMATS: tuple[str, ...] = tuple(ROW_READERS)


def detect_row_format(row: dict[str, Any]) -> str:
    """Which row format a JSON object is, from its keys (the first row decides for a whole file)."""
    keys = set(row)
    if {"prompt", "safe", "unsafe"} <= keys:
        return "beavertails_pairs"
    if {"prompt", "response", "is_safe"} <= keys:
        return "beavertails_qa"
    chosen = row.get("chosen")
    if isinstance(chosen, str) and (hh_rlhf.HUMAN in chosen or chosen.startswith("Human:")):
        return "hh_rlhf"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    return "jsonl"


def records_from_rows(
    rows: Iterable[tuple[str, dict[str, Any]]],
    fmt: str,
    *,
    kind: str | None,
    sink: RowSink,
    split: str | None = None,
    dimension: str | None = None,
) -> list[Record]:
    """Parse (where, row) pairs of one row format into records of `kind`, bad rows via the sink.

    `dimension` overrides a format's default label (alpaca → helpful, ...); for generic rows it
    labels rows without one and leaves out rows naming another (counted in report.filtered).
    """
    if fmt not in ROW_READERS:
        raise ValueError(f"row format {fmt!r} is not one of {', '.join(ROW_FORMATS)}")
    if split is not None and fmt != "jsonl":
        raise ValueError(
            f"split={split!r} filters generic JSONL rows by their 'split' field; "
            f"{fmt} data is split by file, so read the file of the split you want"
        )
    return ROW_READERS[fmt](rows, kind=kind, sink=sink, split=split, dimension=dimension)
