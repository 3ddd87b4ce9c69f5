"""The generic JSONL schema (documented in `trinityx.data.readers`): SFT, preference and routing
rows in one shape, with optional system message, dimension and split. Any data set that is none of
the named ones is converted to this schema, so every field gets the same checks and messages."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trinityx import DIMENSIONS
from trinityx.data.readers.base import (
    DataError,
    ReadReport,
    Record,
    RowSink,
    check_dimension,
    check_messages,
    get_str,
)
from trinityx.data.readers.files import parse_rows, read_file
from trinityx.data.records import Message, PreferencePair, RoutingExample, SFTExample, user_prompt

SFT_NEED = "SFT rows need 'prompt' and 'response', or 'messages'"
PREF_NEED = "preference rows need 'prompt', 'chosen' and 'rejected'"
ROUTING_NEED = (
    "routing rows need 'prompt' and 'weights' {dimension: weight}, "
    "or a 'dimension' for a one-hot target"
)


def _prompt(row: dict[str, Any], where: str, system: str | None, need: str) -> tuple[Message, ...]:
    """The 'prompt' field, a string or a message list ending with a user turn, plus 'system'."""
    if "prompt" not in row:
        raise DataError(f"{where}: field 'prompt' missing ({need})")
    value = row["prompt"]
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: field 'prompt' is empty ({need})")
        return user_prompt(value, system)
    if isinstance(value, list):
        msgs = check_messages(value, where, "prompt", last_role="user")
        return _with_system(msgs, system, where, "prompt")
    raise DataError(
        f"{where}: field 'prompt' must be a string or a list of messages, "
        f"got {type(value).__name__} ({need})"
    )


def _with_system(
    msgs: tuple[Message, ...], system: str | None, where: str, key: str
) -> tuple[Message, ...]:
    if system is None:
        return msgs
    if msgs[0]["role"] == "system":
        raise DataError(f"{where}: both field 'system' and a system message in {key!r}; keep one")
    return ({"role": "system", "content": system}, *msgs)


def _sft(row: dict[str, Any], where: str, system: str | None, dim: str | None) -> SFTExample:
    if "messages" in row:
        if "prompt" in row or "response" in row:
            raise DataError(f"{where}: give either 'messages' or 'prompt' + 'response', not both")
        msgs = check_messages(row["messages"], where, "messages", last_role="assistant")
        if len(msgs) < 2 or msgs[-2]["role"] != "user":
            raise DataError(
                f"{where}: field 'messages' must end with a user turn followed by the "
                "assistant response to learn"
            )
        if not msgs[-1]["content"].strip():
            raise DataError(f"{where}: field 'messages' ends with an empty assistant response")
        return SFTExample(
            _with_system(msgs[:-1], system, where, "messages"), msgs[-1]["content"], dim, where
        )
    messages = _prompt(row, where, system, SFT_NEED)
    return SFTExample(messages, get_str(row, "response", where, SFT_NEED), dim, where)


def _preference(
    row: dict[str, Any], where: str, system: str | None, dim: str | None
) -> PreferencePair:
    messages = _prompt(row, where, system, PREF_NEED)
    chosen = get_str(row, "chosen", where, PREF_NEED)
    rejected = get_str(row, "rejected", where, PREF_NEED)
    return PreferencePair(messages, chosen, rejected, dim, where)


def _routing(
    row: dict[str, Any], where: str, system: str | None, dim: str | None
) -> RoutingExample:
    messages = _prompt(row, where, system, ROUTING_NEED)
    if "weights" not in row:
        if dim is None:
            raise DataError(f"{where}: field 'weights' missing ({ROUTING_NEED})")
        return RoutingExample(messages, {dim: 1.0}, where)
    weights = row["weights"]
    if not isinstance(weights, dict) or not weights:
        raise DataError(
            f"{where}: field 'weights' must be a non-empty object "
            f"{{dimension: weight}} over {', '.join(DIMENSIONS)}"
        )
    for name, w in weights.items():
        check_dimension(name, where, f"weights.{name}")
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise DataError(f"{where}: field 'weights.{name}' must be a finite number, got {w!r}")
        if w < 0:
            raise DataError(
                f"{where}: field 'weights.{name}' is negative ({w}); weights are "
                "non-negative shares of the prompt per dimension"
            )
    total = float(sum(weights.values()))
    if total <= 0:
        raise DataError(f"{where}: field 'weights' sums to 0; give at least one positive weight")
    return RoutingExample(messages, {k: float(v) / total for k, v in weights.items()}, where)


def _is_preference(row: dict[str, Any], kind: str | None) -> bool:
    """Whether to read a row as a preference pair.

    As read (kind=None) a row with 'chosen'/'rejected' is a pair even if it also has a 'response'
    (a pair carries more); for kind="sft" an explicit 'response'/'messages' wins over 'chosen'.
    """
    has_pair = "chosen" in row or "rejected" in row
    if kind == "preference" or (kind is None and has_pair):
        return True
    return kind == "sft" and has_pair and not {"response", "messages"} & set(row)


def generic_record(
    row: dict[str, Any],
    where: str,
    kind: str | None,
    split: str | None = None,
    dimension: str | None = None,
) -> Record | None:
    """Parse one generic row; None when it is valid but outside the `split`/`dimension` filter.

    The row is validated before filtering, so a malformed held-out row fails a train read too.
    """
    row_split = row.get("split")
    if row_split is not None and not isinstance(row_split, str):
        raise DataError(
            f"{where}: field 'split' must be a string such as 'train' or 'heldout', "
            f"got {type(row_split).__name__}"
        )
    row_dim = row.get("dimension")
    if row_dim is not None:
        check_dimension(row_dim, where)
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{where}: field 'system' must be a string, got {type(system).__name__}")
    dim = row_dim if row_dim is not None else dimension
    if kind == "routing" or (kind is None and "weights" in row):
        rec: Record = _routing(row, where, system, dim)
    elif _is_preference(row, kind):
        rec = _preference(row, where, system, dim)
    else:
        rec = _sft(row, where, system, dim)
    if split is not None and row_split != split:
        return None
    if dimension is not None and row_dim is not None and row_dim != dimension:
        return None
    return rec


def rows_to_records(
    rows: Iterable[tuple[str, dict[str, Any]]],
    *,
    kind: str | None,
    sink: RowSink,
    split: str | None = None,
    dimension: str | None = None,
) -> list[Record]:
    """Generic rows as records of `kind`; `split` and `dimension` filter (see `generic_record`)."""
    return parse_rows(
        rows, lambda row, where: generic_record(row, where, kind, split, dimension), kind, sink
    )


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
    return read_file(path, rows_to_records, kind, split, dimension, skip_bad_rows, report)
