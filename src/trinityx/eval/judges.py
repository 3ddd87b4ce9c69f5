"""Judges that turn generations into benchmark judgements, behind one interface.

The evaluation protocol needs four judgements: P(unsafe) for BeaverTails, P(true) / P(informative)
for TruthfulQA generations, and an AlpacaEval preference in [1, 2] against the davinci-003
reference. Any backend can supply them: an OpenAI-compatible API (the published protocol uses GPT-4
/ GPT-judge), a Hugging Face classifier (e.g. a BeaverTails moderation model), or the project's own
CPU-trained local judges. ``JUDGES`` maps config names to backends (the one registry); a backend that cannot give one
judgement says which backend can.

The protocol lives in ``judge_base`` and the OpenAI-compatible backend in ``judge_openai``; both are
re-exported here, with the registry and the Hugging Face and local backends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trinityx.eval.config import JudgeSettings
from trinityx.eval.judge_base import Judge, JudgeConfigError, PartialJudge, check_lengths
from trinityx.eval.judge_openai import (
    HARM_SYSTEM,
    INFO_SYSTEM,
    PAIR_SYSTEM,
    PAIR_TEMPLATE,
    TRUTH_SYSTEM,
    OpenAIJudge,
    parse_pair,
    parse_safety,
    parse_yes_no,
    swap_order,
    truth_prompt,
)

if TYPE_CHECKING:
    from trinityx.eval.judge_artifact import TrainedJudge

__all__ = [
    "HARM_SYSTEM",
    "INFO_SYSTEM",
    "JUDGES",
    "PAIR_SYSTEM",
    "PAIR_TEMPLATE",
    "TRUTH_SYSTEM",
    "HFClassifierJudge",
    "Judge",
    "JudgeConfigError",
    "LocalJudge",
    "OpenAIJudge",
    "build_judge",
    "judge_from_settings",
    "parse_pair",
    "parse_safety",
    "parse_yes_no",
    "swap_order",
    "truth_prompt",
]


# --------------------------------------------------------------------------- Hugging Face classifier


class HFClassifierJudge(PartialJudge):
    """A sequence classifier (AutoModelForSequenceClassification) reading (prompt, response) pairs.

    ``unsafe_label`` is the label name (matched case-insensitively in ``config.id2label``) or index
    whose probability means unsafe; single-logit models are read through a sigmoid.
    """

    def __init__(
        self,
        path: str | Path,
        unsafe_label: str | int = "unsafe",
        device: str = "cpu",
        batch_size: int = 16,
        max_length: int = 512,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).exists():
            raise JudgeConfigError(f"HFClassifierJudge: {path} does not exist; set judge.path")
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        n = self.model.config.num_labels
        if isinstance(unsafe_label, int):
            idx = unsafe_label
        else:
            names = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
            if unsafe_label.lower() not in names:
                raise JudgeConfigError(
                    f"HFClassifierJudge: label {unsafe_label!r} not in {path} labels "
                    f"{sorted(names)}; set judge.unsafe_label to one of them or to an index"
                )
            idx = names[unsafe_label.lower()]
        if not 0 <= idx < max(n, 1):
            raise JudgeConfigError(
                f"HFClassifierJudge: unsafe_label index {idx} out of range ({n} labels)"
            )
        self.unsafe_index = idx

    def harmful(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch
        from tqdm import tqdm

        check_lengths(prompts, responses)
        out: list[float] = []
        starts = range(0, len(prompts), self.batch_size)
        for s in tqdm(starts, desc="harm classifier", leave=False, disable=len(starts) < 10):
            enc = self.tok(
                list(prompts[s : s + self.batch_size]),
                list(responses[s : s + self.batch_size]),
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            if logits.shape[-1] == 1:
                p = torch.sigmoid(logits[:, 0])
            else:
                p = torch.softmax(logits, dim=-1)[:, self.unsafe_index]
            out.extend(p.cpu().tolist())
        return out


# --------------------------------------------------------------------------- local judges


class LocalJudge(PartialJudge):
    """The project's CPU-trained judges (see :mod:`trinityx.eval.local_judges`).

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
        from trinityx.eval.judge_artifact import TrainedJudge  # noqa: F811
        from trinityx.eval.judge_encoders import encoder_from_name

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


@dataclass(frozen=True)
class Backend:
    """A registered judge: its class, and how a config's `judge` section becomes its arguments."""

    cls: type
    from_settings: Callable[[JudgeSettings, Callable[[str], str], Path | None, int], dict]


def _local_kwargs(s: JudgeSettings, resolve, cache_dir, seed) -> dict:
    return {
        "path": resolve(s.path),
        "hard_preferences": s.hard_preferences,
        "prefer_head": s.prefer_head,
    }


def _hf_classifier_kwargs(s: JudgeSettings, resolve, cache_dir, seed) -> dict:
    label = int(s.unsafe_label) if s.unsafe_label.isdigit() else s.unsafe_label
    return {"path": resolve(s.path), "unsafe_label": label}


def _openai_kwargs(s: JudgeSettings, resolve, cache_dir, seed) -> dict:
    return {
        "base_url": s.base_url,
        "model": s.model,
        "api_key_env": s.api_key_env,
        "cache_dir": cache_dir,
        "seed": seed,
    }


# The one judge registry: `trinityx eval` builds through `judge_from_settings`, tests and
# notebooks through `build_judge`; both look the name up here.
JUDGES: dict[str, Backend] = {
    "openai": Backend(OpenAIJudge, _openai_kwargs),
    "hf_classifier": Backend(HFClassifierJudge, _hf_classifier_kwargs),
    "local": Backend(LocalJudge, _local_kwargs),
}


def build_judge(name: str, **kwargs) -> Judge:
    """Instantiate a registered judge by config name."""
    if name not in JUDGES:
        raise JudgeConfigError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    return JUDGES[name].cls(**kwargs)


def judge_from_settings(
    s: JudgeSettings,
    resolve: Callable[[str], str] = str,
    cache_dir: Path | None = None,
    seed: int = 0,
) -> Judge:
    """The judge a config's `judge` section describes; `resolve` turns its paths into real ones
    (relative to the config file), `cache_dir` and `seed` serve the API judge."""
    if s.kind not in JUDGES:
        raise JudgeConfigError(f"unknown judge {s.kind!r}; choose one of {', '.join(JUDGES)}")
    return build_judge(s.kind, **JUDGES[s.kind].from_settings(s, resolve, cache_dir, seed))
