"""Named HHH presets kept in a composed artifact, and the refusal dial they may carry.

A preset is a saved way of asking the composed model for a trade-off ("just-right", found by
`trinityx explore`, or any the user writes): user weights pi with their mode and top_k (Eq.
gates), and optionally a refusal dial tau. It lives in `<artifact>/presets.json` (name ->
fields, written atomically beside the model's other files), so `generate(preset=...)`, the
server's `"hhh": {"preset": ...}` and the playground all read the same definition and a
preset travels with the model it was measured on.

The refusal dial: route a prompt to the harmless expert alone when the calibrated router's
probability of `harmless` exceeds tau, else compose as usual. It turns the router's calibrated
confidence into a refusal threshold the user can slide (low tau: refuse more, also benign
requests; high tau: refuse less). In multiply mode a one-hot pi gives exactly one-hot gates
(g = p * pi / sum p|pi|), so the dial only rewrites a row's pi and needs no other machinery.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from trinityx.model.artifacts import ArtifactError, atomic_write_text

PRESETS_FILE = "presets.json"
HARMLESS = "harmless"


@dataclass
class Preset:
    """One named composition; fields mirror the server's `hhh` options."""

    weights: dict[str, float] | None = None
    """User HHH weights pi (null: the router alone decides)."""
    mode: str = "multiply"
    """multiply (router (x) pi) or fixed (gates = pi)."""
    top_k: int | None = None
    """Keep the k largest gates per position (null: the model's default)."""
    refusal_tau: float | None = None
    """Refusal dial: harmless expert alone when p(harmless) > tau (null: no dial)."""
    allow_negative: bool = False
    """Whether the weights may be negative (task-vector negation)."""
    description: str = ""
    """What the preset is for, and where it came from (e.g. the explorer run)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """What was measured for it (the explorer's scores), for the user's information."""

    def __post_init__(self) -> None:
        if self.mode not in ("multiply", "fixed"):
            raise ValueError(f"preset mode must be 'multiply' or 'fixed', got {self.mode!r}")
        if self.refusal_tau is not None and not 0.0 <= self.refusal_tau <= 1.0:
            raise ValueError(f"refusal_tau must be in [0, 1], got {self.refusal_tau}")

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "preset") -> Preset:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ArtifactError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(d))
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"{where}: {e}") from e

    def to_dict(self) -> dict:
        return asdict(self)


def check_preset_name(name: str) -> str:
    """Names appear in URLs, YAML and the page's picker: lowercase words joined by '-' or '_'."""
    ok = name and all(c.isalnum() or c in "-_" for c in name) and name == name.lower()
    if not ok:
        raise ValueError(f"preset name {name!r}: use lowercase letters, digits, '-' or '_'")
    return name


def load_presets(folder: str | Path) -> dict[str, Preset]:
    """The artifact's presets (empty when it has none); a malformed file names what is wrong."""
    path = Path(folder) / PRESETS_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON ({e}); fix or delete the file") from e
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: expected an object name -> preset, got {type(raw).__name__}")
    return {n: Preset.from_dict(v, f"{path}: preset {n!r}") for n, v in raw.items()}


def save_preset(folder: str | Path, name: str, preset: Preset) -> Path:
    """Add or replace one preset in `<folder>/presets.json` (atomic: temp file + rename)."""
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise ArtifactError(f"{folder} is not an artifact folder (no manifest.json)")
    presets = load_presets(folder)
    presets[check_preset_name(name)] = preset
    text = json.dumps({n: p.to_dict() for n, p in presets.items()}, indent=2) + "\n"
    atomic_write_text(folder / PRESETS_FILE, text)
    return folder / PRESETS_FILE


def resolve_preset(presets: Mapping[str, Preset], name: str) -> Preset:
    """The preset called `name`; an unknown name is an error listing the known ones."""
    if name not in presets:
        known = ", ".join(sorted(presets)) or "none (run `trinityx explore` to save one)"
        raise ValueError(f"unknown preset {name!r}; this model's presets: {known}")
    return presets[name]


def dial_prefs(
    probs: Tensor, prefs: Tensor | None, names: list[str], tau: float | None
) -> Tensor | None:
    """The refusal dial: rows whose calibrated p(harmless) > tau get pi = one-hot harmless.

    probs (B, K) calibrated prompt-level router probabilities; prefs (B, K) or None (router
    alone, i.e. pi = 1 in multiply mode). Returns (B, K) or prefs unchanged when nothing fires.
    """
    if tau is None:
        return prefs
    if HARMLESS not in names:
        raise ValueError(f"the refusal dial needs a {HARMLESS!r} expert; this model has {names}")
    if not (0.0 <= tau <= 1.0 and math.isfinite(tau)):
        raise ValueError(f"refusal_tau must be in [0, 1], got {tau}")
    h = names.index(HARMLESS)
    fire = probs[:, h].float() > tau  # (B,)
    if not bool(fire.any()):
        return prefs
    B, K = probs.shape
    base = torch.ones(B, K, device=probs.device) if prefs is None else prefs.to(probs.device)
    onehot = torch.zeros(K, device=probs.device)
    onehot[h] = 1.0
    return torch.where(fire[:, None], onehot, base.float())  # (B, K)
