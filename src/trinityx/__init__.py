"""TrinityX: helpful, harmless and honest LoRA experts composed inside the transformer by a calibrated router.

The public face, as users of transformers and peft expect::

    from trinityx import TrinityXModel, load_config, ComposeConfig, compose

    model = TrinityXModel.from_pretrained("runs/composed/token")
    cfg = load_config(ComposeConfig, "configs/tiny/compose.yaml", ["router.epochs=2"])
    folder = compose(cfg)  # each stage: run(cfg) -> the artifact folder it wrote

Names are imported on first use (PEP 562), so ``import trinityx`` and ``trinityx --help`` do not
pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

DIMENSIONS: tuple[str, ...] = ("helpful", "harmless", "honest")

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "TrinityXModel": ("trinityx.model.composed", "TrinityXModel"),
    "load_config": ("trinityx.config", "load_config"),
    "ConfigError": ("trinityx.config", "ConfigError"),
    "BackboneConfig": ("trinityx.config", "BackboneConfig"),
    "TrainExpertConfig": ("trinityx.config", "TrainExpertConfig"),
    "ComposeConfig": ("trinityx.config", "ComposeConfig"),
    "CalibrateConfig": ("trinityx.config", "CalibrateConfig"),
    "EvalConfig": ("trinityx.eval.config", "EvalConfig"),
    "train_expert": ("trinityx.stages.train_expert", "run"),
    "compose": ("trinityx.stages.compose", "run"),
    "calibrate": ("trinityx.stages.calibrate", "run"),
    "evaluate": ("trinityx.stages.evaluate", "run"),
}

__all__ = [  # the names of _EXPORTS, plus the constants (written out for linters)
    "DIMENSIONS",
    "__version__",
    "TrinityXModel",
    "load_config",
    "ConfigError",
    "BackboneConfig",
    "TrainExpertConfig",
    "ComposeConfig",
    "CalibrateConfig",
    "EvalConfig",
    "train_expert",
    "compose",
    "calibrate",
    "evaluate",
]

if TYPE_CHECKING:  # what static tools and IDEs see; at run time __getattr__ below does the import
    from trinityx.config import (
        BackboneConfig,
        CalibrateConfig,
        ComposeConfig,
        ConfigError,
        TrainExpertConfig,
        load_config,
    )
    from trinityx.eval.config import EvalConfig
    from trinityx.model.composed import TrinityXModel
    from trinityx.stages.calibrate import run as calibrate
    from trinityx.stages.compose import run as compose
    from trinityx.stages.evaluate import run as evaluate
    from trinityx.stages.train_expert import run as train_expert


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trinityx' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
