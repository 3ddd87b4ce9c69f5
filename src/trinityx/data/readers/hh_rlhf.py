"""Anthropic hh-rlhf: {chosen, rejected} dialogues written "\\n\\nHuman: ...\\n\\nAssistant: ..."
(.jsonl or .jsonl.gz) as multi-turn preference pairs for the harmless expert."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from trinityx.data.readers.base import DataError, ReadReport, get_str
from trinityx.data.readers.files import one_record_per_row, read_file
from trinityx.data.records import Message, PreferencePair

DIMENSION = "harmless"
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"

_TURN = re.compile(r"\n\n(Human|Assistant):")

HH_NEED = (
    "hh-rlhf rows need 'chosen' and 'rejected' dialogues written "
    "'\\n\\nHuman: ...\\n\\nAssistant: ...' that share every turn up to the final Assistant turn"
)


def _normalise_hh(text: str) -> str:
    # Some copies drop the leading blank line; put it back so every turn has the same marker.
    return "\n\n" + text if text.startswith(("Human:", "Assistant:")) else text


def parse_hh_dialogue(text: str, where: str = "", key: str = "dialogue") -> list[Message]:
    """An hh-rlhf transcript as chat messages (Human → user, Assistant → assistant).

    Consecutive turns of the same role (a few real transcripts have two Assistant turns in a row)
    are merged with a blank line, because chat templates require alternating roles.
    """
    parts = _TURN.split(_normalise_hh(text))  # [lead, role, content, role, content, ...]
    if len(parts) < 3:
        raise DataError(
            f"{where}: field {key!r} has no '\\n\\nHuman:' / '\\n\\nAssistant:' turns ({HH_NEED})"
        )
    if parts[0].strip():
        raise DataError(
            f"{where}: field {key!r} has text before its first turn marker: "
            f"{parts[0].strip()[:60]!r} ({HH_NEED})"
        )
    msgs: list[Message] = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        r = "user" if role == "Human" else "assistant"
        c = content.strip()
        if msgs and msgs[-1]["role"] == r:
            msgs[-1] = {"role": r, "content": f"{msgs[-1]['content']}\n\n{c}"}
        else:
            msgs.append({"role": r, "content": c})
    return msgs


def hh_record(row: dict[str, Any], where: str, dimension: str | None) -> PreferencePair:
    """Split a (chosen, rejected) dialogue pair into the shared prompt and the two final replies.

    The prompt ends at the last '\\n\\nAssistant:' inside the text both dialogues share; neither
    remainder may start a new Human turn, or the two prompts differ. Searching the shared text
    (instead of each dialogue's own last marker) matters: a few real replies themselves contain
    an 'Assistant:' marker. Empty replies are kept: the real test set has four empty chosen ones.
    """
    chosen = _normalise_hh(get_str(row, "chosen", where, HH_NEED))
    rejected = _normalise_hh(get_str(row, "rejected", where, HH_NEED))
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        if HUMAN not in text or ASSISTANT not in text:
            raise DataError(
                f"{where}: field {key!r} has no '\\n\\nHuman:' and '\\n\\nAssistant:' "
                f"turns ({HH_NEED})"
            )
    k = 0
    limit = min(len(chosen), len(rejected))
    while k < limit and chosen[k] == rejected[k]:
        k += 1
    cut = chosen.rfind(ASSISTANT, 0, k)
    if (
        cut == -1
        or HUMAN in chosen[cut + len(ASSISTANT) :]
        or HUMAN in rejected[cut + len(ASSISTANT) :]
    ):
        raise DataError(
            f"{where}: the prompts of 'chosen' and 'rejected' differ (they diverge at "
            f"character {k}: {chosen[k : k + 40]!r} vs {rejected[k : k + 40]!r}); {HH_NEED}"
        )
    messages = parse_hh_dialogue(chosen[:cut], where, "chosen")
    if messages[0]["role"] != "user" or messages[-1]["role"] != "user":
        raise DataError(
            f"{where}: the shared prompt must start and end with a Human turn ({HH_NEED})"
        )

    def reply(text: str) -> str:
        return "\n\n".join(p.strip() for p in text[cut + len(ASSISTANT) :].split(ASSISTANT)).strip()

    return PreferencePair(tuple(messages), reply(chosen), reply(rejected), dimension, where)


# hh-rlhf rows as records of `kind`, labelled `dimension` (default harmless).
rows_to_records = one_record_per_row(hh_record, DIMENSION)


def read_hh_rlhf(
    path: str | Path,
    *,
    dimension: str = "harmless",
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[PreferencePair]:
    """Anthropic hh-rlhf {chosen, rejected} dialogues (.jsonl or .jsonl.gz) as multi-turn pairs."""
    records = read_file(path, rows_to_records, "preference", None, dimension, skip_bad_rows, report)
    return cast(list[PreferencePair], records)
