"""Prior ways of combining the HHH experts, built from the same adapter folders as TrinityX.

Used by the speed/memory benchmark (`trinityx.bench`) and the evaluation harness:

* `merges`: static merges (task arithmetic, TIES, DARE, ...) into one plain model.
* `h3fusion`: H3Fusion-style MoE, K FFN copies per layer with a top-2 token gate.
* `ensemble`: output-level ensemble of K merged models (probabilities averaged).
* `xlora`: PEFT's X-LoRA (classifier scaling pass + real pass, no KV cache).
"""

from __future__ import annotations

from trinityx.model.baselines.ensemble import OutputEnsemble, build_ensemble
from trinityx.model.baselines.h3fusion import H3FusionModel, build_h3fusion, train_gate
from trinityx.model.baselines.xlora import XLoraBaseline, build_xlora

BASELINES = {"h3fusion": build_h3fusion, "ensemble": build_ensemble, "xlora": build_xlora}

__all__ = [
    "BASELINES",
    "H3FusionModel",
    "OutputEnsemble",
    "XLoraBaseline",
    "build_ensemble",
    "build_h3fusion",
    "build_xlora",
    "train_gate",
]
