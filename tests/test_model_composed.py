"""TrinityXModel on a tiny random Llama: adapters read exactly, routing modes, generation, save/load.

Experts come from helpers_mocae: random PEFT adapters with different ranks, rank/alpha patterns,
rsLoRA and targets, plus B = 0 experts that must be a no-op.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers_mocae import (
    GREEDY,
    NAMES,
    PROMPTS,
    build,
    make_adapter,
    make_expert_dirs,
    max_diff,
    peft_logits,
)

from trinityx.model.artifacts import ArtifactError, write_manifest
from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.model.inject import load_peft_adapter
from trinityx.nn.router import router_loss


@pytest.fixture(scope="session")
def expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("experts"))


@pytest.fixture(scope="session")
def zero_expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("zero"), zero_b=True)


# ------------------------------------------------------------------------------ adapters
def test_load_peft_adapter_scales_patterns_and_names(expert_dirs):
    harmless = load_peft_adapter(expert_dirs["harmless"])
    up, down = (
        harmless.modules["model.layers.0.mlp.up_proj"],
        harmless.modules["model.layers.1.mlp.down_proj"],
    )
    assert (up.r, up.scale) == (6, 3 / 6) and (down.r, down.scale) == (2, 4 / 2)
    honest = load_peft_adapter(expert_dirs["honest"])
    assert honest.modules["model.layers.0.self_attn.k_proj"].scale == pytest.approx(5 / 3**0.5)
    assert sorted({m.rsplit(".", 1)[1] for m in honest.modules}) == [
        "gate_proj",
        "k_proj",
        "q_proj",
    ]


def test_expert_artifact_dir_is_accepted_and_checked(tiny_backbone, expert_dirs, tmp_path):
    art = tmp_path / "helpful-expert"
    shutil.copytree(expert_dirs["helpful"], art / "adapter")
    write_manifest(
        art,
        "expert",
        dimension="helpful",
        backbone="tiny-random-llama",
        backbone_weights_hash=tiny_backbone.weights_hash,
    )
    ew = load_peft_adapter(art)
    assert ew.name == "helpful" and ew.folder == art / "adapter"
    with pytest.raises(ValueError, match="dimension 'helpful'"):
        TrinityXModel.build(tiny_backbone, {"honest": art}, "none")
    write_manifest(
        art, "expert", dimension="helpful", backbone="other", backbone_weights_hash="0" * 64
    )
    with pytest.raises(ArtifactError, match="trained on backbone 'other'"):
        TrinityXModel.build(tiny_backbone, {"helpful": art}, "none")


def _edit_config(src, dst, **fields):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    cfg.update(fields)
    (dst / "adapter_config.json").write_text(json.dumps(cfg))
    return dst


def test_unsupported_adapters_have_clear_errors(tiny_backbone_cfg, expert_dirs, tmp_path):
    bin_only = _edit_config(expert_dirs["helpful"], tmp_path / "bin")
    (bin_only / "adapter_model.safetensors").rename(bin_only / "adapter_model.bin")
    with pytest.raises(ArtifactError, match=r"adapter_model\.bin.*safetensors only"):
        load_peft_adapter(bin_only)
    with pytest.raises(ArtifactError, match=r"adapter_config\.json: unsupported use_dora=True"):
        load_peft_adapter(_edit_config(expert_dirs["helpful"], tmp_path / "dora", use_dora=True))
    with pytest.raises(ArtifactError, match="unsupported bias='all'"):
        load_peft_adapter(_edit_config(expert_dirs["helpful"], tmp_path / "bias", bias="all"))
    emb = make_adapter(
        tiny_backbone_cfg, tmp_path / "emb", dict(r=2, target_modules=["embed_tokens"]), 0
    )
    with pytest.raises(ArtifactError, match="embedding LoRA"):
        load_peft_adapter(emb)
    with pytest.raises(ArtifactError, match="neither a PEFT adapter folder"):
        load_peft_adapter(tmp_path)


# ------------------------------------------------------------------------------ exactness
def test_injection_targets_union_with_rank0_experts(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "none")
    assert len(tx.layers) == 2 * 7  # union of targets: all 7 linears in both blocks
    q = tx.layers["model.layers.0.self_attn.q_proj"]
    assert q.expert_names == NAMES and q._ranks == [4, 0, 3]  # harmless absent -> rank 0


@pytest.mark.parametrize("mode", ["token", "fixed"])
def test_zero_b_experts_leave_base_logits_unchanged(tiny_backbone_cfg, zero_expert_dirs, mode):
    base = load_backbone(tiny_backbone_cfg).model
    tx = build(tiny_backbone_cfg, zero_expert_dirs, "token", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        want = base(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        w = {"helpful": 0.5, "harmless": 1.0, "honest": 2.0} if mode == "fixed" else None
        got = tx.logits(ids, mask, hhh_weights=w, weight_mode="fixed" if w else "multiply")
    assert max_diff(got, want, mask) <= 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_one_hot_fixed_equals_plain_peft(tiny_backbone_cfg, expert_dirs, name):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    with torch.no_grad():
        got = tx.logits(ids, mask, hhh_weights={name: 1.0}, weight_mode="fixed")
    want = peft_logits(tiny_backbone_cfg, expert_dirs[name], ids, mask)
    assert max_diff(got, want, mask) <= 1e-5
    assert (
        max_diff(
            got,
            tx.logits(
                ids, mask, hhh_weights={"helpful": 1.0, "honest": 1.0}, weight_mode="fixed"
            ).detach(),
            mask,
        )
        > 1e-3
    )  # not trivial


def test_negative_weights_need_explicit_opt_in(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "none")
    with pytest.raises(ValueError, match=r"negative weight for \['helpful'\].*allow_negative=True"):
        tx.generate(PROMPTS, hhh_weights={"helpful": -1.0}, weight_mode="fixed")
    with pytest.raises(ValueError, match=r"unknown HHH dimension\(s\) \['funny'\].*helpful"):
        tx.resolve_weights({"funny": 1.0})
    with pytest.raises(ValueError, match="all hhh weights are zero"):
        tx.resolve_weights([0, 0, 0])
    assert tx.state.gates is None  # failed call left no routing state behind
    ids, mask = tx.encode(PROMPTS)
    with torch.no_grad():
        got = tx.logits(
            ids, mask, hhh_weights={"helpful": -1.0}, weight_mode="fixed", allow_negative=True
        )
    want = peft_logits(tiny_backbone_cfg, expert_dirs["helpful"], ids, mask, negate=True)
    assert max_diff(got, want, mask) <= 1e-5


def test_experts_off_is_the_exact_backbone(tiny_backbone_cfg, expert_dirs):
    base = load_backbone(tiny_backbone_cfg).model
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids = tx.encode(PROMPTS[:1])[0]
    with torch.no_grad(), tx.experts_off():
        got = tx.model(ids).logits
    assert torch.equal(got, base(ids).logits)
    assert tx.state.gates is None


# ------------------------------------------------------------------------------ generation
def test_token_mode_kv_cache_equals_no_cache(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    kw = dict(max_new_tokens=12, **GREEDY, hhh_weights={"helpful": 1, "honest": 0.5})
    a = tx.generate(PROMPTS, use_cache=True, **kw)
    b = tx.generate(PROMPTS, use_cache=False, **kw)
    assert torch.equal(a.sequences, b.sequences)
    ga, gb = a.routing[1]["gates"], b.routing[1]["gates"]
    assert ga == pytest.approx(gb, abs=1e-5) and sum(ga.values()) == pytest.approx(1.0, abs=1e-5)


def _alone_equals_batched(tx, weights, mode="multiply"):
    batched = tx.generate(
        PROMPTS, hhh_weights=weights, weight_mode=mode, max_new_tokens=10, **GREEDY
    )
    for i, prompt in enumerate(PROMPTS):
        w = weights[i] if isinstance(weights, list) else weights
        alone = tx.generate([prompt], hhh_weights=w, weight_mode=mode, max_new_tokens=10, **GREEDY)
        new_b = batched.sequences[i, batched.prompt_length :]
        new_a = alone.sequences[0, alone.prompt_length :]
        assert torch.equal(new_b[: len(new_a)], new_a)
        assert batched.texts[i] == alone.texts[0]
        for key in ("gates", "router_probs"):
            got, want = batched.routing[i][key], alone.routing[0][key]
            assert (got is None and want is None) or got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_batched_left_padding_equals_one_by_one(tiny_backbone_cfg, expert_dirs, routing):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    _alone_equals_batched(tx, None)


@pytest.mark.parametrize(
    "routing,mode", [("token", "multiply"), ("sequence", "multiply"), ("none", "fixed")]
)
def test_per_request_weights(tiny_backbone_cfg, expert_dirs, routing, mode):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    weights = [{"helpful": 1.0, "honest": 0.5}, [0.0, 2.0, 0.0]]
    _alone_equals_batched(tx, weights, mode)
    res = tx.generate(PROMPTS, hhh_weights=weights, weight_mode=mode, max_new_tokens=2)
    assert res.routing[1]["gates"]["helpful"] == 0.0 and res.routing[1]["gates"]["harmless"] > 0


def test_routing_trace_shapes(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids, _ = tx.encode(["hi"])
    trace = tx.routing_trace("hi")
    assert trace.shape == (len(tx.layers), ids.shape[1], 3)
    torch.testing.assert_close(trace.sum(-1), torch.ones(trace.shape[:2]))
    seq = build(tiny_backbone_cfg, expert_dirs, "sequence").routing_trace("hi")
    assert seq.shape == (3,)


# ------------------------------------------------------------------------------ router training
@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_router_parameters_get_gradients(tiny_backbone_cfg, expert_dirs, routing):
    tx = build(tiny_backbone_cfg, expert_dirs, routing)
    params = tx.router_parameters()
    assert params and all(p.requires_grad for p in params)
    ids, mask = tx.encode(PROMPTS)
    if routing == "sequence":
        logits = tx.sequence_logits_from_features(tx.pooled_features(ids, mask))
    else:
        logits = tx.route_logits(ids, mask, train=True)
    loss, _ = router_loss(logits, torch.tensor([0, 1]), prior=tx.prior, kl_weight=0.1)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert not any(
        p.requires_grad for p in tx.model.parameters() if all(p is not q for q in params)
    )
    before = logits.detach()
    tx.freeze_routers()
    torch.testing.assert_close(tx.route_logits(ids, mask), before, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ save / load
@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_save_load_is_bit_exact(tiny_backbone_cfg, expert_dirs, tmp_path, routing):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0, seed=3)
    tx.temperature = 0.7
    if routing == "sequence":
        tx.vector_scaling = (torch.tensor([1.5, 0.5, 1.0]), torch.tensor([0.1, -0.2, 0.0]))
    tx.metadata["note"] = "test"
    tx.save_pretrained(tmp_path / "composed")
    assert (tmp_path / "composed" / "experts" / "harmless" / "adapter_model.safetensors").is_file()
    back = TrinityXModel.from_pretrained(tmp_path / "composed", tiny_backbone_cfg)
    assert (
        back.expert_names == NAMES and back.routing == routing and back.metadata == {"note": "test"}
    )
    assert back.temperature == 0.7 and torch.equal(back.prior, tx.prior)
    ids, mask = tx.encode(PROMPTS)
    with torch.no_grad():
        w = {"helpful": 1.0, "honest": 0.5}
        assert torch.equal(
            back.logits(ids, mask, hhh_weights=w), tx.logits(ids, mask, hhh_weights=w)
        )
        assert torch.equal(back.router_probs(ids, mask), tx.router_probs(ids, mask))
    assert (
        back.generate(PROMPTS, max_new_tokens=6).texts
        == tx.generate(PROMPTS, max_new_tokens=6).texts
    )


def test_load_refuses_a_different_backbone(tiny_backbone_cfg, expert_dirs, tmp_path):
    folder = build(tiny_backbone_cfg, expert_dirs, "none").save_pretrained(tmp_path / "c")
    man = json.loads((folder / "manifest.json").read_text())
    man["backbone_weights_hash"] = "f" * 64
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="was built for backbone 'tiny-random-llama'"):
        TrinityXModel.from_pretrained(folder, tiny_backbone_cfg)


@pytest.mark.parametrize("pool_layer", [0, 1, 2])
def test_pooling_pass_stops_at_pool_layer_exactly(tiny_backbone_cfg, expert_dirs, pool_layer):
    tx = build(tiny_backbone_cfg, expert_dirs, "sequence", pool_layer=pool_layer)
    ids, mask = tx.encode(PROMPTS)
    n_layers = len(tx.model.model.layers)
    with torch.no_grad(), tx.experts_off():
        full = tx.model.base_model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
            output_hidden_states=True,
        ).hidden_states[pool_layer]
    m = mask.unsqueeze(-1).float()
    want = (full * m).sum(1) / m.sum(1)
    assert torch.equal(tx.pooled_features(ids, mask), want)
    assert len(tx.model.model.layers) == n_layers and tx.state.gates is None  # restored


def test_adapters_are_held_once_and_saved_verbatim(tiny_backbone_cfg, expert_dirs, tmp_path):
    from safetensors.torch import load_file

    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    helpful = tx.experts["helpful"]  # scale 2: read back from the fused buffers
    assert all(lo.lora_A.is_meta for lo in helpful.modules.values())
    assert tx.experts["helpful"].summary()["ranks"] == [4]
    tx.save_pretrained(tmp_path / "c")
    for name, folder in expert_dirs.items():  # rsLoRA 'honest' (scale 5/sqrt 3) may keep originals
        want = load_file(str(folder / "adapter_model.safetensors"))
        got = load_file(str(tmp_path / "c" / "experts" / name / "adapter_model.safetensors"))
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), (name, k)
