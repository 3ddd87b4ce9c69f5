"""Readers for the local-judge training files: TruthfulQA judge fine-tuning rows, AlpacaEval
pairwise annotations and SPARD BeaverTails safe/unsafe pairs.

Like the benchmark readers (``trinityx.eval.tasks``), each turns one public file layout into
plain records and raises ``ValueError`` naming the file, the line or item and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trinityx.data.records import PreferencePair, user_prompt
from trinityx.eval.raw_files import iter_jsonl, load_json_list, str_field


@dataclass(frozen=True)
class PairwiseAnnotation:
    """An AlpacaEval judgement: output_2 vs output_1 with preference in [1, 2] (None = missing)."""

    instruction: str
    output_1: str
    output_2: str
    preference: float | None
    source: str = ""
    generator: str = ""  # the model behind output_2 (empty when the file does not say)


@dataclass(frozen=True)
class JudgeExample:
    """A TruthfulQA judge fine-tuning row: question, answer and the yes/no label."""

    question: str
    answer: str
    label: int  # 1 = " yes"
    source: str = ""


def _preference(rec: dict, where: str) -> float | None:
    """AlpacaEval preference: 0 (legacy draw) -> 1.5; None/NaN -> None; else a number in [1, 2]."""
    pref = rec.get("preference", "missing")
    if pref is not None and not isinstance(pref, (int, float)) or isinstance(pref, bool):
        raise ValueError(f"{where}: field 'preference' must be a number in [1, 2] ({pref!r})")
    if pref is None or pref != pref:  # None or NaN: no judgement
        return None
    pref = 1.5 if pref == 0 else float(pref)
    if not 1.0 <= pref <= 2.0:
        raise ValueError(f"{where}: field 'preference' = {pref} is outside [1, 2]")
    return pref


def read_pairwise_annotations(path: str | Path) -> list[PairwiseAnnotation]:
    """AlpacaEval annotation file: instruction, output_1, output_2, preference.

    Preference 0 (AlpacaEval's legacy draw) becomes 1.5; None/NaN stays None (no judgement).
    The generator is the file's stem (``<model>.json``).
    """
    path = Path(path)
    out = []
    for i, rec in enumerate(load_json_list(path)):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected an object")
        out.append(_annotation(rec, where, f"{path.name}:{i}", path.stem))
    return out


def _annotation(rec: dict, where: str, source: str, generator: str) -> PairwiseAnnotation:
    """One GPT-4 annotation (instruction, output_1, output_2, preference) with errors at `where`."""
    return PairwiseAnnotation(
        str_field(rec, "instruction", where),
        str_field(rec, "output_1", where, allow_empty=True),
        str_field(rec, "output_2", where, allow_empty=True),
        _preference(rec, where),
        source,
        generator,
    )


def read_generator_annotations(path: str | Path) -> list[PairwiseAnnotation]:
    """AlpacaEval annotations with generator names, one JSON object per line (.jsonl or .jsonl.gz).

    Fields: instruction, output_1, output_2, generator_2 (the model judged against output_1's
    reference), preference. Used to hold out whole generators when validating a judge.
    """
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        out.append(_annotation(rec, where, where, str_field(rec, "generator_2", where)))
    return out


def read_spard_pairs(path: str | Path) -> list[PreferencePair]:
    """SPARD BeaverTails pairs (prompt, safe, unsafe) as preference pairs safe > unsafe."""
    path = Path(path)
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        out.append(
            PreferencePair(
                user_prompt(str_field(rec, "prompt", where)),
                str_field(rec, "safe", where),
                str_field(rec, "unsafe", where),
                "harmless",
                where,
            )
        )
    return out


_QA_RE = re.compile(r"^Q: (?P<q>.*?)\nA:(?P<a>.*)\n(?P<tag>True|Helpful):$", re.DOTALL)


def read_judge_finetune(path: str | Path) -> list[JudgeExample]:
    """TruthfulQA GPT-judge / GPT-info rows ``{"prompt": "Q: ..\\nA: ..\\nTrue:", "completion": " yes"}``.

    The answer is everything after the first ``"\\nA:"`` (a few generated answers contain more
    ``"A:"`` lines; they belong to the answer being judged).
    """
    path = Path(path)
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        m = _QA_RE.match(str_field(rec, "prompt", where))
        if m is None:
            raise ValueError(f"{where}: field 'prompt' must look like 'Q: ...\\nA: ...\\nTrue:'")
        comp = str(rec.get("completion", "")).strip().lower()
        if comp not in ("yes", "no"):
            raise ValueError(f"{where}: field 'completion' must be ' yes' or ' no' ({comp!r})")
        out.append(JudgeExample(m["q"].strip(), m["a"].strip(), int(comp == "yes"), where))
    return out
