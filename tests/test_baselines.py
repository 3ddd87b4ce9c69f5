"""Baselines on the tiny random Llama and Gemma 3: H3Fusion-style MoE, output ensemble, X-LoRA builder.

A one-hot H3Fusion gate must reproduce base + that expert (FFN-only experts, checked against
plain PEFT); the attention weights get the mean task vector; a one-member ensemble must decode
exactly like its merged model.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers_mocae import make_adapter, max_diff, peft_logits

from trinityx.model.backbone import load_backbone
from trinityx.model.baselines.ensemble import OutputEnsemble, build_ensemble
from trinityx.model.baselines.finetuned import merge_expert
from trinityx.model.baselines.h3fusion import build_h3fusion, train_gate
from trinityx.model.baselines.xlora import build_xlora
from trinityx.model.inject import load_peft_adapter

FFN = ["gate_proj", "up_proj", "down_proj"]
NAMES = ("helpful", "harmless", "honest")


@pytest.fixture(scope="module")
def tiny_backbone_cfg(family_cfg):
    """Every baseline test runs on both families (Gemma 3's FFN sits between two norms)."""
    return family_cfg


@pytest.fixture(scope="module")
def ffn_dirs(tiny_backbone_cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("ffn-experts")
    return {
        n: make_adapter(
            tiny_backbone_cfg, root / n, dict(r=2 + i, lora_alpha=4, target_modules=FFN), i
        )
        for i, n in enumerate(NAMES)
    }


@pytest.fixture(scope="module")
def mixed_dirs(tiny_backbone_cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed-experts")
    spec = dict(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", *FFN])
    return {n: make_adapter(tiny_backbone_cfg, root / n, spec, 10 + i) for i, n in enumerate(NAMES)}


def _ids(bb, texts=("Hello there", "How do I make a bomb? Tell me now")):
    bb.tokenizer.padding_side = "left"
    enc = bb.tokenizer(list(texts), return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def _logits(model, ids, mask):
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits


@pytest.mark.parametrize("k", range(3))
def test_h3fusion_one_hot_gate_is_base_plus_that_ffn_expert(tiny_backbone_cfg, ffn_dirs, k):
    h3 = build_h3fusion(load_backbone(tiny_backbone_cfg), ffn_dirs)
    assert len(h3.moe_layers) == 2 and all(len(m.experts) == 3 for m in h3.moe_layers.values())
    ids, mask = _ids(load_backbone(tiny_backbone_cfg))
    h3.set_force_probs(F.one_hot(torch.tensor(k), 3).float())
    got = _logits(h3.model, ids, mask)
    want = peft_logits(tiny_backbone_cfg, ffn_dirs[NAMES[k]], ids, mask)
    assert max_diff(got, want, mask) <= 1e-5
    other = peft_logits(tiny_backbone_cfg, ffn_dirs[NAMES[(k + 1) % 3]], ids, mask)
    assert max_diff(got, other, mask) > 1e-3  # the experts really differ


def test_h3fusion_attention_gets_the_mean_task_vector(tiny_backbone_cfg, mixed_dirs):
    base = load_backbone(tiny_backbone_cfg).model
    h3 = build_h3fusion(load_backbone(tiny_backbone_cfg), mixed_dirs)
    name = "model.layers.1.self_attn.q_proj"
    deltas = [load_peft_adapter(d).modules[name] for d in mixed_dirs.values()]
    want = (
        base.get_submodule(name).weight + sum(lo.scale * lo.lora_B @ lo.lora_A for lo in deltas) / 3
    )
    torch.testing.assert_close(h3.model.get_submodule(name).weight, want, rtol=0, atol=1e-6)
    # learned gates route top-2 and the model generates like any HF model
    ids, mask = _ids(load_backbone(tiny_backbone_cfg))
    out = h3.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, ids.shape[1] + 4)


def test_h3fusion_train_gate_learns_the_labels(tiny_backbone_cfg, ffn_dirs):
    bb = load_backbone(tiny_backbone_cfg)
    h3 = build_h3fusion(bb, ffn_dirs, gate_init_std=0.0)
    prompts = [
        bb.tokenizer(t, return_tensors="pt")["input_ids"][0]
        for t in ("hi", "bomb now", "is it true?")
    ]
    losses = train_gate(h3, prompts, [0, 1, 2], steps=30, lr=0.05)
    assert losses[-1] < 0.5 * losses[0]
    assert not any(p.requires_grad for p in h3.model.parameters())


def test_ensemble_of_one_equals_its_merged_model(tiny_backbone_cfg, ffn_dirs):
    bb = load_backbone(tiny_backbone_cfg)
    ens = build_ensemble(bb, {"helpful": ffn_dirs["helpful"]})
    ids, mask = _ids(bb)
    got = ens.generate(ids, mask, max_new_tokens=8)
    member = ens.members[0]
    want = member.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=8,
        min_new_tokens=8,
        do_sample=False,
        pad_token_id=bb.tokenizer.pad_token_id,
    )
    assert torch.equal(got, want)
    # the merged member is the expert: same logits as plain PEFT
    ref = peft_logits(tiny_backbone_cfg, ffn_dirs["helpful"], ids, mask)
    assert max_diff(_logits(member, ids, mask), ref, mask) <= 1e-5


def test_ensemble_mixes_probabilities_and_validates_weights(tiny_backbone_cfg, ffn_dirs):
    bb = load_backbone(tiny_backbone_cfg)
    a = merge_expert(copy.deepcopy(bb.model), load_peft_adapter(ffn_dirs["helpful"])).eval()
    ens = OutputEnsemble([a, bb.model], bb.tokenizer, weights=[1.0, 0.0])  # weight 0: ignored
    ids, mask = _ids(bb)
    alone = OutputEnsemble([a], bb.tokenizer)
    assert torch.equal(ens.generate(ids, mask, 5), alone.generate(ids, mask, 5))
    with pytest.raises(ValueError, match="non-negative weights"):
        OutputEnsemble([a, bb.model], bb.tokenizer, weights=[1.0])
    eos = int(alone.generate(ids, mask, 1)[0, -1])  # stop as soon as row 0 emits this token
    short = alone.generate(ids, mask, 5, eos_token_id=eos)
    assert short.shape[1] <= ids.shape[1] + 5 and int(short[0, ids.shape[1]]) == eos


def test_xlora_builds_and_generates(tiny_backbone_cfg, ffn_dirs):
    xl = build_xlora(load_backbone(tiny_backbone_cfg), ffn_dirs)
    assert xl.expert_names == list(NAMES)
    ids, mask = _ids(load_backbone(tiny_backbone_cfg))
    with torch.no_grad():
        out = xl.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=3, min_new_tokens=3, do_sample=False
        )
    assert out.shape == (2, ids.shape[1] + 3)
