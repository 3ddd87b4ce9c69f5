"""Stanford Alpaca: {instruction, input, output} rows (a .json array, or .jsonl rows) as SFT
examples for the helpful expert; the prompt is formatted as Alpaca formats it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from trinityx.data.readers.base import DataError, ReadReport, get_str
from trinityx.data.readers.files import one_record_per_row, read_file
from trinityx.data.records import SFTExample, user_prompt

DIMENSION = "helpful"
ALPACA_NEED = "Alpaca rows need 'instruction' and 'output', and optionally 'input'"


def alpaca_record(row: dict[str, Any], where: str, dimension: str | None) -> SFTExample:
    """instruction (+ "\\n\\n" + input when there is one) → output, as Stanford Alpaca formats it."""
    instruction = get_str(row, "instruction", where, ALPACA_NEED)
    extra = row.get("input")
    if extra is None:
        extra = ""
    if not isinstance(extra, str):
        raise DataError(
            f"{where}: field 'input' must be a string, got {type(extra).__name__} ({ALPACA_NEED})"
        )
    output = get_str(row, "output", where, ALPACA_NEED)
    text = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return SFTExample(user_prompt(text), output, dimension, where)


# Alpaca rows as records of `kind`, labelled `dimension` (default helpful).
rows_to_records = one_record_per_row(alpaca_record, DIMENSION)


def read_alpaca(
    path: str | Path,
    *,
    dimension: str = "helpful",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[SFTExample]:
    """Alpaca {instruction, input, output} records (a .json array, or .jsonl rows) as SFT."""
    records = read_file(path, rows_to_records, "sft", None, dimension, skip_bad_rows, report)
    return cast(list[SFTExample], records)
