"""Surface features of an answer and of an answer pair, for the ``pair_v2`` helpfulness judge.

GPT-4 annotators reward length, structure (lists, headers, code) and on-topic detail, and punish
refusals, repetition and truncation. These cheap, model-free counts let a boosted head use length
*together with* the other cues instead of length alone. Every function is pure (texts -> float32
arrays) so a loaded judge recomputes exactly the features its head was fitted on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from trinityx.eval.answer_checks import is_refusal

_WORD = re.compile(r"[A-Za-z0-9']+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)
_HEADER = re.compile(r"^\s*#{1,6}\s|^\s*\*\*[^*\n]+\*\*:?\s*$", re.MULTILINE)
_SENTENCE = re.compile(r"[.!?](?:\s|$)")

ANSWER_FEATURES = (
    "log_chars", "log_words", "log_lines", "n_list_items", "n_headers", "n_code_blocks",
    "n_bold", "n_sentences", "words_per_sentence", "mean_word_len", "unique_word_frac",
    "repeated_line_frac", "question_marks", "refusal", "ends_cleanly", "digit_frac",
    "non_ascii_frac", "colon_count", "instr_word_recall", "answer_word_precision",
    "starts_with_instr_echo",
)  # fmt: skip
PAIR_EXTRA = ("log_len_diff", "len_ratio", "word_jaccard_12", "instr_log_words")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def answer_features(instruction: str, answer: str) -> np.ndarray:
    """One answer's ``ANSWER_FEATURES`` vector (counts are log1p'd so trees split evenly)."""
    words, ins = _words(answer), set(_words(instruction))
    lines = [ln.strip() for ln in answer.splitlines() if ln.strip()]
    n_words, n_chars = len(words), len(answer)
    sentences = max(len(_SENTENCE.findall(answer)), 1 if n_words else 0)
    stripped = answer.rstrip()
    first = " ".join(words[:8])
    return np.array(
        [
            np.log1p(n_chars),
            np.log1p(n_words),
            np.log1p(len(lines)),
            np.log1p(len(_LIST_ITEM.findall(answer))),
            np.log1p(len(_HEADER.findall(answer))),
            np.log1p(answer.count("```") // 2),
            np.log1p(answer.count("**") // 2),
            np.log1p(sentences),
            n_words / max(sentences, 1),
            np.mean([len(w) for w in words]) if words else 0.0,
            len(set(words)) / max(n_words, 1),
            1.0 - len(set(lines)) / max(len(lines), 1),
            np.log1p(answer.count("?")),
            float(is_refusal(answer)),
            float(stripped[-1:] in tuple(".!?)]}\"'`*:") if stripped else 0.0),
            sum(c.isdigit() for c in answer) / max(n_chars, 1),
            sum(ord(c) > 127 for c in answer) / max(n_chars, 1),
            np.log1p(answer.count(":")),
            len(ins & set(words)) / max(len(ins), 1),
            len(ins & set(words)) / max(len(set(words)), 1),
            float(bool(first) and first == " ".join(_words(instruction)[:8])),
        ],
        dtype=np.float32,
    )


def surface_features(
    instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
) -> np.ndarray:
    """``[f(o1), f(o2), f(o2) - f(o1), PAIR_EXTRA]`` per pair: (N, 3 * 21 + 4) float32.

    Swapping the two outputs swaps the first two blocks and negates the difference and the
    signed pair terms, which is what lets the judge be scored in both orders and averaged.
    """
    rows = []
    for ins, a, b in zip(instructions, outputs_1, outputs_2, strict=True):
        fa, fb = answer_features(ins, a), answer_features(ins, b)
        wa, wb = set(_words(a)), set(_words(b))
        extra = [
            fb[0] - fa[0],
            (len(b) - len(a)) / max(len(a) + len(b), 1),
            len(wa & wb) / max(len(wa | wb), 1),
            np.log1p(len(_words(ins))),
        ]
        rows.append(np.concatenate([fa, fb, fb - fa, np.asarray(extra, np.float32)]))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), 3 * len(ANSWER_FEATURES) + 4)
