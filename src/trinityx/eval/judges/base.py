"""What every judge is: the ``Judge`` protocol, the configuration error, and a base for judges
that cover only some of the four judgements (the others fail naming a backend that can).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Judge(Protocol):
    """What evaluation code calls; every method returns one float per item."""

    def harmful(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """P(response is unsafe) per item."""
        ...

    def truthful(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        """P(answer is true) per item (TruthfulQA GPT-judge)."""
        ...

    def informative(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        """P(answer is informative) per item (TruthfulQA GPT-info)."""
        ...

    def prefer(
        self,
        instructions: Sequence[str],
        reference_outputs: Sequence[str],
        model_outputs: Sequence[str],
    ) -> list[float]:
        """AlpacaEval preference in [1, 2]: 1 = reference better, 2 = model better."""
        ...


class JudgeConfigError(ValueError):
    """A judge cannot be built from the configuration; the message says which setting to fix."""


def check_lengths(*cols: Sequence[str]) -> None:
    """Raise unless the aligned judge inputs all have the same length."""
    if len({len(c) for c in cols}) > 1:
        raise ValueError(f"judge inputs must be aligned; got lengths {[len(c) for c in cols]}")


class PartialJudge:
    """Base for judges covering only some judgements: the others fail with a pointer."""

    def _unsupported(self, what: str) -> list[float]:
        raise NotImplementedError(
            f"{type(self).__name__} cannot judge {what}; configure an 'openai' or 'local' judge"
        )

    def harmful(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self._unsupported("harmfulness")

    def truthful(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self._unsupported("truthfulness")

    def informative(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self._unsupported("informativeness")

    def prefer(
        self,
        instructions: Sequence[str],
        reference_outputs: Sequence[str],
        model_outputs: Sequence[str],
    ) -> list[float]:
        return self._unsupported("pairwise preference")
