"""Static merges of the HHH LoRA experts into one plain HF model (the merge baselines).

A static merge fixes one combination for every prompt, which is what TrinityX's router is
compared against. Every method reads the experts through PEFT (so rsLoRA, rank/alpha patterns and
per-expert target modules mean exactly what PEFT means) and returns a plain model with the
merged update folded into W0 (`merge_and_unload` / `unload`), so evaluation runs at base speed.

* `task_arithmetic`: PEFT `add_weighted_adapter(combination_type="cat")`, i.e. A = cat_k w_k s_k
  A_k, B = cat_k B_k, so B A = sum_k w_k s_k B_k A_k: the exact weighted sum of task vectors
  (Ilharco et al. 2023).
* `linear`: PEFT's `combination_type="linear"` as PEFT users get it: it averages the A's and the
  B's separately, and (sum sqrt(w) A)(sum sqrt(w) B) has cross terms B_j A_k, so it is NOT the sum
  of task vectors; it needs equal ranks. Kept as a reference point only.
* `ties`, `dare_linear`, `dare_ties`: the published methods (Yadav et al. 2023; Yu et al. 2024)
  on the dense task vectors dW_k = s_k B_k A_k of each module, with PEFT's own `merge_utils`
  functions. PEFT's `add_weighted_adapter` variants of these prune A and B separately, which is
  not the published method on the task vector; dense is exact and cheap for LoRA-sized models.
  DARE's random drop is seeded, so the same seed gives the same merged weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import PreTrainedModel

from trinityx.model.inject import resolve_adapter_dir

METHODS = ("task_arithmetic", "linear", "ties", "dare_linear", "dare_ties")
_DENSE = ("ties", "dare_linear", "dare_ties")
_MERGED = "merged"


def _load_all(model: PreTrainedModel, experts: Mapping[str, str | Path]):
    """One PeftModel holding every expert as a named adapter (train-expert folders accepted)."""
    from peft import PeftModel

    names = list(experts)
    if _MERGED in names:
        raise ValueError(f"expert name {_MERGED!r} is reserved; rename that expert")
    dirs = {n: str(resolve_adapter_dir(experts[n])[0]) for n in names}
    peft = PeftModel.from_pretrained(model, dirs[names[0]], adapter_name=names[0])
    for n in names[1:]:
        peft.load_adapter(dirs[n], adapter_name=n)
    return peft


def _lora_layers(peft):
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in peft.named_modules() if isinstance(m, LoraLayer)]


@torch.no_grad()
def _dense_merge(peft, weights: dict[str, float], method: str, density: float, seed: int):
    """W0 += merge_fn([s_k B_k A_k], w) per module, then drop the adapters (no LoRA left)."""
    from peft.utils import merge_utils

    fn = {
        "ties": lambda t, w: merge_utils.ties(t, w, density, "total"),
        "dare_linear": lambda t, w: merge_utils.dare_linear(t, w, density),
        "dare_ties": lambda t, w: merge_utils.dare_ties(t, w, density, "total"),
    }[method]
    with torch.random.fork_rng(devices=[]):  # DARE's Bernoulli drop: seeded, user RNG untouched
        torch.manual_seed(seed)
        for _, layer in sorted(_lora_layers(peft), key=lambda x: x[0]):
            present = [n for n in weights if n in layer.lora_A]
            if not present:
                continue
            deltas = [layer.get_delta_weight(n).float() for n in present]  # each (d_out, d_in)
            w = torch.tensor([weights[n] for n in present], dtype=torch.float32)
            base = layer.get_base_layer().weight
            base.copy_((base.float() + fn(deltas, w.to(base.device))).to(base.dtype))
    return peft.unload()


@torch.no_grad()
def _peft_merge(peft, weights: dict[str, float], method: str) -> PreTrainedModel:
    """PEFT add_weighted_adapter ('cat' or 'linear') + merge_and_unload of that adapter only."""
    names = list(weights)
    combination = "cat" if method == "task_arithmetic" else "linear"
    if combination == "linear":
        ranks = {n: _max_rank(peft.peft_config[n]) for n in names}
        if len(set(ranks.values())) > 1:
            raise ValueError(
                f"merge 'linear' needs experts of equal rank, got {ranks}; use "
                "'task_arithmetic' (exact, any ranks) instead"
            )
    peft.add_weighted_adapter(names, [weights[n] for n in names], _MERGED, combination)
    # PEFT sets lora_alpha = r (scaling 1, the expert scales are folded into the factors) but
    # keeps the first expert's use_rslora, which would rescale by sqrt(r): pin scaling to 1.
    for _, layer in _lora_layers(peft):
        if _MERGED in layer.scaling:
            layer.scaling[_MERGED] = 1.0
    peft.set_adapter(_MERGED)
    return peft.merge_and_unload(adapter_names=[_MERGED])


def _max_rank(cfg) -> int:
    return max([cfg.r, *(cfg.rank_pattern or {}).values()])


def merge_experts(
    model: PreTrainedModel,
    experts: Mapping[str, str | Path],
    method: str,
    weights: Mapping[str, float] | None = None,
    density: float = 0.5,
    seed: int = 0,
) -> PreTrainedModel:
    """Merge expert adapters (name -> folder) into `model` (consumed) and return a plain model.

    weights: name -> w_k (missing names: 1.0, the plain sum of task vectors). density: the
    fraction kept by TIES / DARE. seed: DARE's random drop.
    """
    if method not in METHODS:
        raise ValueError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")
    if not experts:
        raise ValueError("merge needs at least one expert folder (config key `experts`)")
    unknown = sorted(set(weights or {}) - set(experts))
    if unknown:
        raise ValueError(
            f"merge.weights names {unknown}, which are not among experts {list(experts)}"
        )
    if method in _DENSE and not 0.0 < density <= 1.0:
        raise ValueError(f"merge.density must be in (0, 1], got {density}")
    w = {n: float((weights or {}).get(n, 1.0)) for n in experts}
    peft = _load_all(model, experts)
    merged = (
        _dense_merge(peft, w, method, density, seed)
        if method in _DENSE
        else _peft_merge(peft, w, method)
    )
    return merged.eval().requires_grad_(False)
