"""``LocalJudge``: the project's CPU-trained judges behind the ``Judge`` interface.

It reads one artifact folder, or a folder of them (one per kind), and loads each head the first
time a judgement needs it, so an evaluation that needs only harmfulness never loads MiniLM twice
or reads the helpfulness trees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trinityx.eval.judges.base import JudgeConfigError, PartialJudge

if TYPE_CHECKING:
    from trinityx.eval.judges.local.trained import TrainedJudge


class LocalJudge(PartialJudge):
    """The project's CPU-trained judges (see :mod:`trinityx.eval.judges.local`).

    ``path`` is one artifact folder (with judge.json) or a folder holding ``truth/``, ``info/``,
    ``harm/``, ``helpfulness/`` and ``pairwise/`` artifacts; each is loaded the first time it is
    needed. ``prefer_head`` picks the AlpacaEval judge: ``helpfulness`` (default; boosted trees
    validated on held-out models) or ``pairwise`` (the older MiniLM + logistic-regression head).
    ``hard_preferences`` turns P(model better) into 1 or 2 like AlpacaEval's discrete GPT-4
    annotator; ``False`` gives the soft ``1 + P``; ``None`` (default) uses the mode the judge's
    training measured as closer to GPT-4's per-model win rates (judge.json ``preference_mode``;
    hard for judges that do not record one).
    """

    def __init__(
        self,
        path: str | Path,
        encoder: Callable[[Sequence[str]], np.ndarray] | None = None,
        hard_preferences: bool | None = None,
        prefer_head: str = "helpfulness",
    ) -> None:
        self.path, self.encoder, self.hard = Path(path), encoder, hard_preferences
        if prefer_head not in ("helpfulness", "pairwise"):
            raise JudgeConfigError(
                f"LocalJudge: prefer_head={prefer_head!r}; choose 'helpfulness' or 'pairwise'"
            )
        self.prefer_head = prefer_head
        if not self.path.is_dir():
            raise JudgeConfigError(
                f"LocalJudge: {self.path} does not exist; train judges first "
                "(trinityx train-judge kind=truth|info|harm|helpfulness|pairwise) and set judge.path"
            )
        self._heads: dict[str, TrainedJudge] = {}
        self._encoders: dict[str, Callable[[Sequence[str]], np.ndarray]] = {}

    def _head(self, kind: str) -> TrainedJudge:
        from trinityx.eval.judges.local.encoders import encoder_from_name
        from trinityx.eval.judges.local.trained import TrainedJudge  # noqa: F811

        if kind not in self._heads:
            single = self.path / "judge.json"
            if single.is_file():
                meta = json.loads(single.read_text())
                if meta.get("kind") != kind:
                    return self._unsupported(
                        f"{kind} (artifact {self.path} is a {meta.get('kind')!r} judge)"
                    )
                folder = self.path
            elif (self.path / kind / "judge.json").is_file():
                folder = self.path / kind
            else:
                return self._unsupported(f"{kind}: no {self.path / kind}/judge.json")
            name = json.loads((folder / "judge.json").read_text()).get("encoder", "")
            if self.encoder is None and name not in self._encoders:  # one encoder for all heads
                self._encoders[name] = encoder_from_name(name)
            enc = self.encoder if self.encoder is not None else self._encoders[name]
            self._heads[kind] = TrainedJudge.load(folder, enc)
        return self._heads[kind]

    def harmful(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self._head("harm").predict_proba(prompts, responses).tolist()

    def truthful(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self._head("truth").predict_proba(questions, answers).tolist()

    def informative(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self._head("info").predict_proba(questions, answers).tolist()

    def prefer(
        self,
        instructions: Sequence[str],
        reference_outputs: Sequence[str],
        model_outputs: Sequence[str],
    ) -> list[float]:
        head = self._head(self.prefer_head)
        p = np.asarray(head.predict_proba(instructions, reference_outputs, model_outputs))
        hard = self.hard
        if hard is None:
            hard = head.meta.get("preference_mode", "hard") == "hard"
        return (1.0 + (p >= 0.5) if hard else 1.0 + p).astype(float).tolist()
