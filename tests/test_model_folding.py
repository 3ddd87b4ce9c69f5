"""Folded-weights generation (model/folding.py): shared gates folded into W0 for one call give
the unfolded model's tokens and logits, W0 comes back bit-exactly, distinct gates never fold."""

from __future__ import annotations

import pytest
import torch
from helpers_mocae import GREEDY, PROMPTS, build, make_expert_dirs, max_diff

from trinityx.model.folding import folded_view, shared_gates
from trinityx.nn.mocae import MoCaELinear


@pytest.fixture(scope="module")
def expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("fold-experts"))


def _snapshot(tx) -> dict:
    """Every tensor of the model: name -> (the object, a copy of its bytes)."""
    sd = tx.model.state_dict(keep_vars=True)
    return {k: (v, v.detach().clone()) for k, v in sd.items()}


def _assert_restored(tx, snap: dict) -> None:
    sd = tx.model.state_dict(keep_vars=True)
    assert sd.keys() == snap.keys()
    for k, (obj, data) in snap.items():
        assert sd[k] is obj, k  # the very same tensor object
        assert torch.equal(sd[k].detach(), data), k  # with the very same values
    assert all(isinstance(tx.model.get_submodule(n), MoCaELinear) for n in tx.layers)


def _count_mocae_calls(tx) -> tuple[list[int], list]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    return calls, [layer.register_forward_pre_hook(hook) for layer in tx.layers.values()]


def _gen(tx, prompts, fold, **kw):
    res = tx.generate(prompts, max_new_tokens=6, fold=fold, return_routing=False, **GREEDY, **kw)
    return res.sequences[:, res.prompt_length :]


CASES = [  # (routing, generate kwargs, prompts): every row shares one gate vector
    ("sequence", {}, PROMPTS[1:]),
    ("none", {"hhh_weights": {"helpful": 0.7, "honest": 0.4}}, PROMPTS),
    (
        "token",
        {
            "hhh_weights": {"helpful": 0.6, "harmless": -0.3},
            "weight_mode": "fixed",
            "allow_negative": True,
        },
        PROMPTS,
    ),
]


@pytest.mark.parametrize("routing,kw,prompts", CASES, ids=[c[0] for c in CASES])
def test_folded_generation_equals_unfolded_and_restores_w0(
    tiny_backbone_cfg, expert_dirs, routing, kw, prompts
):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    snap = _snapshot(tx)
    calls, hooks = _count_mocae_calls(tx)
    routing_calls = 0
    if routing == "sequence":  # the router's experts-off pooling pass runs the MoCaE layers
        tx.router_probs(*tx.encode(prompts))
        routing_calls, calls[0] = calls[0], 0
    want = _gen(tx, prompts, False, **kw)
    assert calls[0] > routing_calls  # unfolded: the MoCaE layers ran while decoding
    calls[0] = 0
    got = _gen(tx, prompts, True, **kw)
    assert calls[0] == routing_calls  # folded: plain linears only while decoding
    for h in hooks:
        h.remove()
    assert torch.equal(got, want)
    _assert_restored(tx, snap)


@pytest.mark.parametrize("routing", ["sequence", "token"])
def test_folded_logits_match_within_1e5(tiny_backbone_cfg, expert_dirs, routing):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    g = torch.tensor([0.5, -0.25, 0.9])
    snap = _snapshot(tx)
    with torch.no_grad():
        want = tx.logits(ids, mask, gates=g)
        with folded_view(tx.model, tx.layers, g):
            got = tx.logits(ids, mask, gates=g)
        with tx.experts_off():
            base = tx.logits(ids, mask)
    assert max_diff(got, want, mask) <= 1e-5
    assert max_diff(got, base, mask) > 1e-3  # the experts really are in the folded weights
    _assert_restored(tx, snap)


def test_fold_is_undone_when_the_call_fails(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "none")
    snap = _snapshot(tx)
    with pytest.raises(RuntimeError, match="boom"), folded_view(tx.model, tx.layers, torch.ones(3)):
        assert not any(isinstance(m, MoCaELinear) for m in tx.model.modules())
        raise RuntimeError("boom")
    _assert_restored(tx, snap)


def test_distinct_gates_per_row_keep_the_unfolded_path(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "sequence", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    probs = tx.router_probs(ids, mask)
    assert not torch.equal(probs[0], probs[1])  # the random router tells the prompts apart
    calls, hooks = _count_mocae_calls(tx)
    batched = _gen(tx, PROMPTS, True)
    assert calls[0] > 0
    for h in hooks:
        h.remove()
    alone = [_gen(tx, [p], True) for p in PROMPTS]  # each alone: folded
    for row, one in zip(batched, alone, strict=True):
        assert torch.equal(row[-one.shape[1] :], one[0])


def test_shared_gates():
    g = torch.tensor([0.2, 0.3, 0.5])
    assert torch.equal(shared_gates(g), g)
    assert torch.equal(shared_gates(g.repeat(4, 1)), g)
    assert shared_gates(torch.stack([g, g.flip(0)])) is None
    assert shared_gates(g.repeat(2, 5, 1)) is None  # per-token gates never fold
    assert shared_gates(None) is None
