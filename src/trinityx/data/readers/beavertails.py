"""BeaverTails: {prompt, safe, unsafe} pairs (SPARD's layout) and the 30k/330k labelled
{prompt, response, is_safe} rows, for the harmless expert. Labelled rows give SFT on the safe
answers only, or preference pairs of a safe and an unsafe answer to the same prompt."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from trinityx.data.readers.base import DataError, ReadReport, Record, RowSink, convert, get_str
from trinityx.data.readers.files import one_record_per_row, read_file
from trinityx.data.records import PreferencePair, SFTExample, user_prompt

DIMENSION = "harmless"
PAIRS_NEED = "BeaverTails pair rows need 'prompt', 'safe' and 'unsafe'"

QA_NEED = "BeaverTails QA rows need 'prompt', 'response' and 'is_safe' (true/false)"


def beavertails_pair_record(
    row: dict[str, Any], where: str, dimension: str | None
) -> PreferencePair:
    """prompt, safe, unsafe → chosen = safe, rejected = unsafe."""
    prompt = get_str(row, "prompt", where, PAIRS_NEED)
    safe = get_str(row, "safe", where, PAIRS_NEED)
    unsafe = get_str(row, "unsafe", where, PAIRS_NEED)
    return PreferencePair(user_prompt(prompt), safe, unsafe, dimension, where)


def beavertails_qa_row(row: dict[str, Any], where: str) -> tuple[str, str, bool]:
    """(prompt, response, is_safe) of a BeaverTails 30k/330k row, validated."""
    prompt = get_str(row, "prompt", where, QA_NEED)
    response = get_str(row, "response", where, QA_NEED)
    if "is_safe" not in row:
        raise DataError(f"{where}: field 'is_safe' missing ({QA_NEED})")
    is_safe = row["is_safe"]
    if not isinstance(is_safe, bool):
        raise DataError(
            f"{where}: field 'is_safe' must be true or false, got {is_safe!r} ({QA_NEED})"
        )
    return prompt, response, is_safe


def pair_safe_unsafe(
    rows: Iterable[tuple[str, str, str, bool]], dimension: str | None
) -> tuple[list[PreferencePair], int]:
    """PreferencePairs from labelled (where, prompt, response, is_safe) rows, and the number of
    rows left unpaired.

    Rows are grouped by prompt in first-seen order; within a prompt the i-th safe response is paired
    with the i-th unsafe one, so no response is reused and the result does not depend on hashing.
    Prompts with only safe or only unsafe answers give no pair.
    """
    groups: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
    total = 0
    for where, prompt, response, is_safe in rows:
        total += 1
        safe, unsafe = groups.setdefault(prompt, ([], []))
        (safe if is_safe else unsafe).append((where, response))
    pairs = []
    for prompt, (safe, unsafe) in groups.items():
        for (w_safe, r_safe), (w_unsafe, r_unsafe) in zip(safe, unsafe, strict=False):
            source = f"{w_safe},{w_unsafe.rsplit(':', 1)[-1]}"  # "file:3,7": both rows
            pairs.append(PreferencePair(user_prompt(prompt), r_safe, r_unsafe, dimension, source))
    return pairs, total - 2 * len(pairs)


# {prompt, safe, unsafe} rows as records of `kind` (chosen = safe), labelled `dimension`.
pair_rows_to_records = one_record_per_row(beavertails_pair_record, DIMENSION)


def qa_rows_to_records(
    rows: Iterable[tuple[str, dict[str, Any]]],
    *,
    kind: str | None,
    sink: RowSink,
    split: str | None = None,
    dimension: str | None = None,
) -> list[Record]:
    """Labelled QA rows: SFT keeps the safe answers only; preference pairs safe with unsafe."""
    dim = dimension if dimension is not None else DIMENSION
    parsed = []
    for where, row in rows:
        try:
            parsed.append((where, *beavertails_qa_row(row, where)))
        except DataError as e:
            sink.bad(e)
    if kind == "preference":
        pairs, unpaired = pair_safe_unsafe(parsed, dim)
        sink.report.filtered += unpaired
        return list(pairs)
    out: list[Record] = []
    for where, prompt, response, is_safe in parsed:
        if not is_safe:
            sink.report.filtered += 1  # unsafe answers are never SFT targets
            continue
        out.append(convert(SFTExample(user_prompt(prompt), response, dim, where), kind, where))
    return out


def read_beavertails_pairs(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """BeaverTails {prompt, safe, unsafe} JSONL as pairs (chosen = safe)."""
    records = read_file(
        path, pair_rows_to_records, "preference", None, dimension, skip_bad_rows, report
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
    records = read_file(path, qa_rows_to_records, "sft", None, dimension, skip_bad_rows, report)
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
    records = read_file(
        path, qa_rows_to_records, "preference", None, dimension, skip_bad_rows, report
    )
    return cast(list[PreferencePair], records)
