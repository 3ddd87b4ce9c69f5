"""Row parsers for the public data sets: Alpaca, TruthfulQA, BeaverTails and Anthropic hh-rlhf.

Each parser turns one raw row (a dict, wherever it came from: a JSON array, a JSONL line, a CSV row,
a Hugging Face dataset) into a record, or raises a DataError naming the row, the field and the fix.
`readers.py` wires them to files; `readers_hf.py` to Hugging Face datasets.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trinityx.data.readers_base import DataError, RowSink, get_str, open_text
from trinityx.data.records import Message, PreferencePair, SFTExample, user_prompt

# ---------------------------------------------------------------- Alpaca


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


# ---------------------------------------------------------------- TruthfulQA

TRUTHFULQA_ROWS = 817
TRUTHFULQA_TRAIN_ROWS = 408  # H3Fusion's split: first 408 rows in file order train, last 409 test
TRUTHFULQA_SPLITS = ("train", "test", "all")


def split_answers(text: str) -> list[str]:
    """TruthfulQA's ';'-separated answer list, stripped, empties dropped."""
    return [a.strip() for a in text.split(";") if a.strip()]


def truthfulqa_rows(
    path: Path, split: str, columns: tuple[str, ...], sink: RowSink
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ("path:row N", row) for the rows of `split`, cut by file order before any validation.

    The split is positional on purpose (no shuffling), so that results stay comparable with prior
    work; skipping a malformed row therefore never moves a question between train and test.
    """
    if split not in TRUTHFULQA_SPLITS:
        raise ValueError(
            f"TruthfulQA split={split!r}; expected one of {', '.join(TRUTHFULQA_SPLITS)}"
        )
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise DataError(
                    f"{path}: the file is empty (a TruthfulQA CSV starts with the header "
                    f"{','.join(columns)})"
                )
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: not a TruthfulQA CSV: column(s) {', '.join(map(repr, missing))} "
                    f"missing from the header (found {', '.join(header)})"
                )
            rows = list(reader)
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e}); check quoting around that line") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); re-save the file as UTF-8") from e
    indexed = list(enumerate(rows, start=1))
    if split != "all":
        if len(rows) != TRUTHFULQA_ROWS:
            raise DataError(
                f"{path}: has {len(rows)} rows; the positional train/test split (first "
                f"{TRUTHFULQA_TRAIN_ROWS} / last {TRUTHFULQA_ROWS - TRUTHFULQA_TRAIN_ROWS}) is defined "
                f"for the {TRUTHFULQA_ROWS}-question TruthfulQA.csv; use split='all' for other files"
            )
        cut = TRUTHFULQA_TRAIN_ROWS
        indexed = indexed[:cut] if split == "train" else indexed[cut:]
    for n, row in indexed:
        sink.rows += 1
        where = f"{path}:row {n}"
        if None in row or any(v is None for v in row.values()):
            sink.bad(
                DataError(
                    f"{where}: the row has {'more' if None in row else 'fewer'} fields "
                    "than the header; quote fields that contain commas"
                )
            )
            continue
        yield where, row


def truthfulqa_sft(row: dict[str, str], where: str, dimension: str | None) -> SFTExample:
    """Question → Best Answer: the honest expert learns the calibrated, non-imitative answer."""
    need = "TruthfulQA rows need 'Question' and 'Best Answer'"
    question = get_str(row, "Question", where, need)
    best = get_str(row, "Best Answer", where, need)
    return SFTExample(user_prompt(question.strip()), best.strip(), dimension, where)


def truthfulqa_sft_all(row: dict[str, str], where: str, dimension: str | None) -> list[SFTExample]:
    """Question → each correct answer (Best Answer first, duplicates dropped): more honest targets
    per question. "I have no comment" is kept only when it is the sole correct answer, since as a
    target among informative ones it teaches the uninformative evasion that TI charges."""
    need = "TruthfulQA rows need 'Question', 'Best Answer' and 'Correct Answers'"
    question = get_str(row, "Question", where, need).strip()
    best = get_str(row, "Best Answer", where, need).strip()
    correct = split_answers(get_str(row, "Correct Answers", where, need, empty_ok=True))
    answers = list(dict.fromkeys([best, *correct]))
    informative = [a for a in answers if a.lower().rstrip(".") != "i have no comment"]
    msgs = user_prompt(question)
    return [SFTExample(msgs, a, dimension, where) for a in informative or answers]


def truthfulqa_pairs(
    row: dict[str, str], where: str, dimension: str | None, pairs_per_question: int
) -> list[PreferencePair]:
    """Up to `pairs_per_question` (true, false) pairs, deterministic: the i-th pair takes true
    answer i (Best Answer first, then the other Correct Answers) and incorrect answer i, each list
    cycled when it is the shorter one."""
    need = "TruthfulQA rows need 'Question', 'Best Answer', 'Correct Answers', 'Incorrect Answers'"
    question = get_str(row, "Question", where, need).strip()
    best = get_str(row, "Best Answer", where, need).strip()
    correct = split_answers(get_str(row, "Correct Answers", where, need, empty_ok=True))
    incorrect = split_answers(get_str(row, "Incorrect Answers", where, need))
    if not incorrect:
        raise DataError(
            f"{where}: field 'Incorrect Answers' has no answers ({need}, ';'-separated)"
        )
    trues = [best] + [c for c in correct if c != best]
    n = min(pairs_per_question, max(len(trues), len(incorrect)))
    msgs = user_prompt(question)
    return [
        PreferencePair(msgs, trues[i % len(trues)], incorrect[i % len(incorrect)], dimension, where)
        for i in range(n)
    ]


# ---------------------------------------------------------------- BeaverTails

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


# ---------------------------------------------------------------- Anthropic hh-rlhf

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
