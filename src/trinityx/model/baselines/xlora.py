"""X-LoRA baseline (Buehler & Buehler 2024) from PEFT, with the same HHH adapters as TrinityX.

PEFT 0.21 builds it with `get_peft_model(model, XLoraConfig(...))`. What it needs and why:

* `adapters`: a dict of adapter folders. PEFT registers the experts internally as "0", "1", ...
  in dict order (not under the given keys), and `disable_adapter_layers` then looks the given
  keys up (KeyError 'helpful'; see huggingface/peft #2132, #3421), so the keys passed are
  "0".."K-1" and `expert_names` keeps the HHH names in that order.
* `hidden_size`: the backbone's, for the X-LoRA classifier; `xlora_depth`: classifier depth
  (1 = one Linear on the last hidden state).
* `model.config.use_cache = False`, enforced by PEFT: every forward first runs a scaling pass
  (adapters off, output_hidden_states) to get the classifier's scalings, then the real pass,
  both installed by forward hooks. There is no KV cache, so each decode step re-reads the whole
  sequence twice: this is the cost TrinityX's fused in-layer routing avoids.

The classifier is untrained here (random init): speed and memory do not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from trinityx.model.backbone import Backbone
from trinityx.model.inject import resolve_adapter_dir


@dataclass
class XLoraBaseline:
    model: nn.Module  # the PeftModel wrapping the backbone (generate works, without KV cache)
    tokenizer: object
    expert_names: list[str]  # expert index i <-> adapter "i" inside PEFT


def build_xlora(
    backbone: Backbone,
    experts: Mapping[str, str | Path],
    xlora_depth: int = 1,
    xlora_size: int = 256,
) -> XLoraBaseline:
    """Wrap `backbone.model` (in place) in PEFT's X-LoRA over the expert adapter folders."""
    from peft import XLoraConfig, get_peft_model

    model = backbone.model
    folders = [str(resolve_adapter_dir(p)[0]) for p in experts.values()]
    model.config.use_cache = False  # X-LoRA refuses a model that caches
    cfg = XLoraConfig(
        task_type="CAUSAL_LM",
        hidden_size=model.config.hidden_size,
        adapters={str(i): f for i, f in enumerate(folders)},
        xlora_depth=xlora_depth,
        xlora_size=xlora_size,
        xlora_dropout_p=0.0,
    )
    peft_model = get_peft_model(model, cfg).eval()
    peft_model.requires_grad_(False)
    return XLoraBaseline(peft_model, backbone.tokenizer, list(experts))
