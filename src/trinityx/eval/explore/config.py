"""Config of `trinityx explore` (one dataclass, a docstring per field, strict loader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trinityx.config import BackboneConfig, ConfigError
from trinityx.eval.config import JudgeSettings

SIZES = ("refusal", "over_refusal", "truthfulqa_mc", "hh_harmless", "spard", "alpaca_eval")


def _default_limits() -> dict[str, int]:
    # about 1-2 min per point for SmolLM2-135M on 2 CPU cores; alpaca_eval needs a judge
    return {
        "refusal": 32,
        "over_refusal": 32,
        "truthfulqa_mc": 40,
        "hh_harmless": 40,
        "spard": 40,
        "alpaca_eval": 0,
    }


@dataclass
class ExploreConfig:
    """`trinityx explore MODEL`: sweep HHH weights and the refusal dial, map the trade-off,
    save the best HHH point as a preset in the artifact."""

    model: str
    """Composed artifact folder (trinityx compose); the preset is saved into it."""
    output_dir: str = "runs/explore"
    """Result folder (written atomically): report.md, results.json, PNGs."""
    grid_steps: int = 4
    """Simplex grid resolution: weights i / grid_steps summing to 1 (4 -> 15 points for 3
    experts, corners included)."""
    router_only: bool = True
    """Also score the router alone (no user weights): is the calibrated router on the front?"""
    taus: list[float] = field(default_factory=lambda: [0.2, 0.35, 0.5, 0.65, 0.8])
    """Refusal dial thresholds: harmless expert alone when calibrated p(harmless) > tau."""
    weight_mode: Literal["multiply", "fixed"] = "multiply"
    """How grid weights combine with the router: multiply (router (x) pi) or fixed (gates = pi)."""
    limits: dict[str, int] = field(default_factory=_default_limits)
    """Items per measure (first N in file order): refusal (do_not_answer), over_refusal
    (benign_edgy_80), truthfulqa_mc, hh_harmless, spard (SPARD test pairs), alpaca_eval (0 =
    skip; needs the judge). Keys not given keep their defaults."""
    max_new_tokens: int = 48
    """Greedy tokens per answer for the refusal measures (the refusal check reads the start)."""
    alpaca_max_new_tokens: int = 128
    """Greedy tokens per AlpacaEval answer."""
    data_dir: str = "../shared/data"
    """Folder with refusal/, truthfulqa/, hh_rlhf/, beavertails/ (and alpaca_eval/)."""
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    """The AlpacaEval judge (only when limits.alpaca_eval > 0)."""
    cache_dir: str = "runs/eval_cache"
    """Harness output cache (one file per point): an interrupted sweep resumes, reruns are free."""
    batch_size: int = 8
    """Prompts per generation batch."""
    backbone: BackboneConfig | None = None
    """Backbone override (default: the one the artifact records)."""
    preset_name: str = "just-right"
    """Name of the recommended preset saved into the artifact."""
    save_preset: bool = True
    """Write the recommended point into <model>/presets.json (atomic)."""
    n_boot: int = 200
    """Bootstrap resamples for the harness's intervals."""
    seed: int = 0
    """Seeds the bootstrap."""
    overwrite: bool = False
    """Replace an existing output_dir instead of refusing."""


def check_explore_config(cfg: ExploreConfig) -> None:
    """Semantic checks, every problem at once, each naming its key."""
    problems = []
    cfg.limits = {**_default_limits(), **cfg.limits}  # keys not given keep their defaults
    if cfg.grid_steps < 1:
        problems.append(f"grid_steps: must be >= 1, got {cfg.grid_steps}")
    for t in cfg.taus:
        if not 0.0 <= t <= 1.0:
            problems.append(f"taus: {t} is outside [0, 1]")
    for k, v in cfg.limits.items():
        if k not in SIZES:
            problems.append(f"limits.{k}: unknown; known: {', '.join(SIZES)}")
        elif not isinstance(v, int) or v < 0:
            problems.append(f"limits.{k}: must be an integer >= 0, got {v!r}")
    for key in ("max_new_tokens", "alpaca_max_new_tokens", "batch_size", "n_boot"):
        if getattr(cfg, key) <= 0:
            problems.append(f"{key}: must be > 0, got {getattr(cfg, key)}")
    if problems:
        raise ConfigError("explore config", problems)
