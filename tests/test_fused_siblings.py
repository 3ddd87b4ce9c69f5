"""Sibling layers sharing one LoRA A matmul (nn/siblings.py): q/k/v and gate/up of a block give
the separate layers' logits and greedy tokens, really share the matmul, and fall back to each
layer's own path for another input, an input changed in place, changed routing, grad or
inference mode."""

from __future__ import annotations

import pytest
import torch
from helpers_mocae import GREEDY, PROMPTS, build, make_expert_dirs, max_diff
from torch.overrides import TorchFunctionMode

from trinityx.nn.siblings import SiblingGroup, group_siblings, ungroup

ATTN = "model.layers.0.self_attn."


@pytest.fixture(scope="module")
def expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("sibling-experts"))


def _groups(tx) -> list[SiblingGroup]:
    return list({id(la._group): la._group for la in tx.layers.values() if la._group}.values())


class _CountAddmm(TorchFunctionMode):
    """Counts torch.addmm calls: token mode's A matmuls, x [A; W_r]^T + [0; b_r]."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.addmm
        return func(*args, **(kwargs or {}))


def _gen(tx, **kw):
    res = tx.generate(PROMPTS, max_new_tokens=6, fold=False, return_routing=False, **GREEDY, **kw)
    return res.sequences[:, res.prompt_length :]


def test_groups_are_formed_at_injection(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "token")
    groups = _groups(tx)
    n_blocks = tx.model.config.num_hidden_layers
    assert len(groups) == 2 * n_blocks  # q/k/v and gate/up of every block
    attn = tx.layers[ATTN + "q_proj"]._group
    assert attn.members == [tx.layers[ATTN + n] for n in ("q_proj", "k_proj", "v_proj")]
    assert [m._R for m in attn.members] == [7, 3, 4]  # helpful 4 + honest 3, honest, helpful
    mlp = tx.layers["model.layers.0.mlp.gate_proj"]._group
    assert [m._R for m in mlp.members] == [3, 6]  # gate (honest), up (harmless, rank_pattern)
    for name in ("self_attn.o_proj", "mlp.down_proj"):  # read other inputs: alone
        assert tx.layers[f"model.layers.0.{name}"]._group is None


# token: routers in every layer; sequence: distinct gates per row (unfolded); none: one
# gate vector folded into B (fold=False keeps the MoCaE layers)
CASES = [("token", None), ("token", 1), ("sequence", None), ("sequence", 1), ("none", None)]


@pytest.mark.parametrize("routing,top_k", CASES, ids=[f"{r}-top{k}" for r, k in CASES])
def test_shared_matmul_equals_separate_layers(tiny_backbone_cfg, expert_dirs, routing, top_k):
    tx = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    kw = {"top_k": top_k, "hhh_weights": {"helpful": 1.0, "honest": 0.5}}
    with torch.no_grad():
        fused = tx.logits(ids, mask, **kw)
        tokens = _gen(tx, **kw)
        runs = sum(g.runs for g in _groups(tx))
        ungroup(tx.layers)
        separate = tx.logits(ids, mask, **kw)
        assert torch.equal(_gen(tx, **kw), tokens)  # greedy tokens identical
    assert runs > 0  # the shared matmul really ran
    assert max_diff(fused, separate, mask) <= 1e-5
    with tx.experts_off(), torch.no_grad():
        assert max_diff(fused, tx.logits(ids, mask), mask) > 1e-3  # experts really in there


def test_explicit_gates_per_row_and_per_token_equal_separate_layers(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    g = torch.Generator().manual_seed(3)
    for gates in (torch.rand(2, 3, generator=g), torch.randn(*ids.shape, 3, generator=g)):
        group_siblings(tx.layers)
        with torch.no_grad():
            fused = tx.logits(ids, mask, gates=gates)
            assert all(grp.runs == 1 for grp in _groups(tx))
            ungroup(tx.layers)
            separate = tx.logits(ids, mask, gates=gates)
        assert max_diff(fused, separate, mask) <= 1e-5


def test_token_records_and_calibration_follow_the_separate_layers(family_cfg, tmp_path):
    """Router logits recorded per layer in call order; a calibration set after the stacked
    weights were built rebuilds them. Both backbone families, in float64: the same math, not
    merely float32 rounding of a differently blocked matmul (Gemma's hidden states reach ~30)."""
    tx = build(family_cfg, make_expert_dirs(family_cfg, tmp_path), "token", router_init_std=1.0)
    tx.model.double()  # the stacked float32 weights are rebuilt for float64
    ids, mask = tx.encode(PROMPTS)
    fused = tx.token_records(ids, mask)
    ungroup(tx.layers)
    separate = tx.token_records(ids, mask)
    assert len(fused) == len(separate) == len(tx.layers)
    for a, b in zip(fused, separate, strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    group_siblings(tx.layers)
    with torch.no_grad():
        tx.logits(ids, mask)  # stacked weights built
        k = tx.layers[ATTN + "k_proj"]
        k.set_gate_calibration(torch.tensor([3.0, 0.2, 1.0]), torch.tensor([0.0, 1.0, -1.0]))
        fused = tx.logits(ids, mask, top_k=2, hhh_weights={"harmless": 0.2})
        runs = sum(g.runs for g in _groups(tx))
        ungroup(tx.layers)
        separate = tx.logits(ids, mask, top_k=2, hhh_weights={"harmless": 0.2})
    assert runs > 0 and max_diff(fused, separate, mask) <= 1e-10


def test_the_shared_matmul_replaces_the_siblings_a_matmuls(tiny_backbone_cfg, expert_dirs):
    """One forward: each group runs once and serves its other members; sum(S - 1) A matmuls
    fewer than with every layer on its own."""
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    groups = _groups(tx)
    with torch.no_grad(), _CountAddmm() as fused:
        tx.logits(ids, mask)
    assert [g.runs for g in groups] == [1] * len(groups)
    assert [g.hits for g in groups] == [len(g.members) - 1 for g in groups]
    ungroup(tx.layers)
    with torch.no_grad(), _CountAddmm() as separate:
        tx.logits(ids, mask)
    assert separate.calls == len(tx.layers)  # one A matmul per layer
    assert separate.calls - fused.calls == sum(len(g.members) - 1 for g in groups)


def _layers(tiny_backbone_cfg, expert_dirs):
    tx = build(tiny_backbone_cfg, expert_dirs, "token", router_init_std=1.0)
    q, k, v = (tx.layers[ATTN + n] for n in ("q_proj", "k_proj", "v_proj"))
    return tx, q._group, (q, k, v)


def _alone(layers, x):
    """Each layer's own path (the reference), grouping restored afterwards."""
    group = layers[0]._group
    saved = [(m._group, m._group_slot) for m in layers]
    for m in layers:
        m._group = None
    try:
        return [m(x) for m in layers]
    finally:
        for m, (g, s) in zip(layers, saved, strict=True):
            m._group, m._group_slot = g, s
        assert layers[0]._group is group


def test_siblings_fall_back_for_another_or_changed_input(tiny_backbone_cfg, expert_dirs):
    tx, group, (q, k, v) = _layers(tiny_backbone_cfg, expert_dirs)
    g = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(2, 3, q.base_layer.in_features, generator=g) for _ in range(2))
    with torch.no_grad():
        want1, want2 = _alone((q, k, v), x1), _alone((q, k, v), x2)
        got = [q(x1), k(x2), v(x1)]  # k reads another input: its own path; v is served
        assert (group.runs, group.hits) == (1, 1)
        for a, b in zip(got, [want1[0], want2[1], want1[2]], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        q(x1)
        x1.mul_(2.0)  # changed in place after the leader ran: its result is stale
        assert torch.equal(k(x1), _alone((q, k, v), x1)[1]) and group.hits == 1
        q(x1)
        tx.state.temperature = 3.0  # routing input changed between the calls
        assert torch.equal(k(x1), _alone((q, k, v), x1)[1]) and group.hits == 1
        tx.state.temperature = 1.0
        k(x1)  # routing back as the leader ran it: served
        k(x1)  # but only once; the second call runs on its own
        assert (group.runs, group.hits) == (3, 2)
        x3 = x1.clone()
        k(x3)  # before its leader: own path
        assert (group.runs, group.hits) == (3, 2)


def test_grad_autocast_and_inference_mode_never_share(tiny_backbone_cfg, expert_dirs):
    tx, group, layers = _layers(tiny_backbone_cfg, expert_dirs)
    x = torch.randn(2, 3, layers[0].base_layer.in_features)
    with torch.no_grad():
        want = _alone(layers, x)
    graph = [m(x.requires_grad_()) for m in layers]  # grad enabled: the graph path
    assert all(y.requires_grad for y in graph)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        [m(x) for m in layers]
    with torch.inference_mode():
        inference = [m(x.clone()) for m in layers]  # inference tensors: no version counter
    assert (group.runs, group.hits) == (0, 0)
    for a, b, c in zip(graph, inference, want, strict=True):
        torch.testing.assert_close(a.detach(), c, rtol=0, atol=1e-5)
        torch.testing.assert_close(b, c, rtol=0, atol=1e-5)
