"""The one judge registry: config name -> backend class, and how a config's ``judge`` section
becomes that backend's arguments.

``trinityx eval`` builds its judges through ``judge_from_settings``, tests and notebooks through
``build_judge``; both look the name up in ``JUDGES``, so a new backend is registered once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trinityx.eval.config import JudgeSettings
from trinityx.eval.judges.base import Judge, JudgeConfigError
from trinityx.eval.judges.hf_classifier import HFClassifierJudge
from trinityx.eval.judges.local.backend import LocalJudge
from trinityx.eval.judges.openai import OpenAIJudge


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
