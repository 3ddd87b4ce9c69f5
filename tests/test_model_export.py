"""Exports of a fixed composition: merged HF weights and one PEFT adapter both reproduce it,
on both backbone families.

Adapter helpers come from helpers_mocae (same random experts: different ranks, rank/alpha
patterns, rsLoRA, different targets).
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers_mocae import PROMPTS, build, make_expert_dirs, max_diff
from transformers import AutoModelForCausalLM

from trinityx.model.backbone import load_backbone
from trinityx.model.export import export_merged, export_peft, merged_state
from trinityx.nn.mocae import MoCaELinear

WEIGHTS = [
    {"helpful": 0.6, "harmless": 0.3, "honest": 0.8},
    {"helpful": 0.7, "harmless": -0.4},  # honest dropped, a negated expert, uneven ranks
]


@pytest.fixture(scope="module")
def tiny_backbone_cfg(family_cfg):
    """Every export test runs on both families (Gemma: tied embeddings, (1 + w) norms, q/k norms,
    scaled embeddings all survive save_pretrained / PEFT reload)."""
    return family_cfg


@pytest.fixture(scope="module")
def expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("export-experts"))


def _composed_logits(tx, w):
    ids, mask = tx.encode(PROMPTS)
    with torch.no_grad():
        return (
            ids,
            mask,
            tx.logits(ids, mask, hhh_weights=w, weight_mode="fixed", allow_negative=True),
        )


def _run(model, ids, mask):
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits


@pytest.mark.parametrize("w", WEIGHTS)
def test_export_merged_equals_composed(tiny_backbone_cfg, expert_dirs, tmp_path, w):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids, mask, want = _composed_logits(tx, w)
    export_merged(tx, w, tmp_path / "merged", allow_negative=True)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any(isinstance(m, MoCaELinear) for m in plain.modules())
    assert max_diff(_run(plain, ids, mask), want, mask) <= 1e-5
    assert (tmp_path / "merged" / "tokenizer_config.json").is_file()
    manifest = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert manifest["chat_template"] == tx.backbone.chat_template  # plain (Gemma) / chatml
    # the composed model is untouched by the export
    assert all(isinstance(tx.model.get_submodule(n), MoCaELinear) for n in tx.layers)
    assert torch.equal(_composed_logits(tx, w)[2], want)


def test_merged_state_is_independent(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "none")
    w = WEIGHTS[0]
    ids, mask, want = _composed_logits(tx, w)
    plain = merged_state(tx, w)
    assert max_diff(_run(plain, ids, mask), want, mask) <= 1e-5
    plain.model.layers[0].self_attn.q_proj.weight.data.zero_()
    assert torch.equal(_composed_logits(tx, w)[2], want)
    with pytest.raises(ValueError, match="allow_negative=True"):
        merged_state(tx, WEIGHTS[1])


@pytest.mark.parametrize("w", WEIGHTS)
def test_export_peft_equals_composed(tiny_backbone_cfg, expert_dirs, tmp_path, w):
    from peft import PeftModel

    tx = build(tiny_backbone_cfg, expert_dirs, "sequence")
    ids, mask, want = _composed_logits(tx, w)
    export_peft(tx, w, tmp_path / "peft", allow_negative=True)
    ref = PeftModel.from_pretrained(load_backbone(tiny_backbone_cfg).model, str(tmp_path / "peft"))
    assert max_diff(_run(ref.eval(), ids, mask), want, mask) <= 1e-5
    lora_q = ref.base_model.model.model.layers[0].self_attn.q_proj
    assert lora_q.r["default"] == (7 if "honest" in w else 4)  # cat of ranks, zero gates dropped
