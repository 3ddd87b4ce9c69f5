"""MoCaELinear: fused experts equal the naive per-expert loop, gates route as specified."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trinityx.nn.mocae import MoCaELinear, RoutingState

D_IN, D_OUT, RANKS, SCALES = 16, 12, (2, 4, 3), (2.0, 0.5, 1.5)
NAMES = ("helpful", "harmless", "honest")
K = len(NAMES)


def make_layer(zero_b: bool = False, router: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = nn.Linear(D_IN, D_OUT)
    with torch.no_grad():
        base.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
        base.bias.copy_(torch.randn(D_OUT, generator=g))
    state = RoutingState()
    layer = MoCaELinear(base, state)
    factors = {}
    for name, r, s in zip(NAMES, RANKS, SCALES, strict=True):
        a = torch.randn(r, D_IN, generator=g)
        b = torch.zeros(D_OUT, r) if zero_b else torch.randn(D_OUT, r, generator=g)
        layer.add_expert(name, a, b, s)
        factors[name] = (a, b, s)
    rlin = None
    if router:
        rlin = nn.Linear(D_IN, K)
        with torch.no_grad():
            rlin.weight.copy_(torch.randn(K, D_IN, generator=g))
            rlin.bias.copy_(torch.randn(K, generator=g))
        layer.attach_router(rlin.weight, rlin.bias)
    return layer, state, factors, rlin


def x_batch(b: int = 2, t: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, D_IN, generator=torch.Generator().manual_seed(seed))


def test_layout_and_state_dict_names():
    layer, _, _, _ = make_layer(router=True)
    R = sum(RANKS)
    assert layer.lora_A_cat.shape == (R + K, D_IN)  # router rows under A
    assert layer.lora_B_cat.shape == (D_OUT, R)
    assert layer.rank_to_expert.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    keys = set(layer.state_dict())
    assert {"base_layer.weight", "lora_A_cat", "lora_B_cat", "rank_to_expert"} <= keys
    assert {"router_bias", "expert_scales"} <= keys
    assert not any(p.requires_grad for p in layer.parameters())


def test_experts_off_without_routing_inputs():
    layer, _, _, _ = make_layer()
    x = x_batch()
    assert torch.equal(layer(x), layer.base_layer(x))


@pytest.mark.parametrize("mode", ["token", "fixed"])
def test_zero_b_leaves_base_unchanged(mode):
    layer, state, _, _ = make_layer(zero_b=True, router=(mode == "token"))
    if mode == "fixed":
        state.gates = torch.tensor([0.3, -0.9, 2.0])
    x = x_batch()
    torch.testing.assert_close(layer(x), layer.base_layer(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(K,), (2, K), (2, 5, K)])
def test_fused_equals_naive_loop(shape):
    layer, state, _, _ = make_layer()
    gates = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    state.gates = gates
    x = x_batch()
    fused, naive = layer(x), layer.naive_forward(x, gates)
    assert fused.shape == (2, 5, D_OUT)
    assert (fused - naive).abs().max().item() <= 1e-5
    assert (fused - layer.base_layer(x)).abs().max().item() > 1e-2  # experts really on


def test_per_row_gates_differ_per_row():
    layer, state, factors, _ = make_layer()
    state.gates = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    x = x_batch()
    y = layer(x)
    for row, name in ((0, "helpful"), (1, "honest")):
        a, b, s = factors[name]
        torch.testing.assert_close(y[row], layer.base_layer(x[row]) + s * (x[row] @ a.T) @ b.T)


@pytest.mark.parametrize("k", range(K))
def test_one_hot_gate_is_single_expert(k):
    layer, state, factors, _ = make_layer()
    state.gates = F.one_hot(torch.tensor(k), K).float()
    x = x_batch()
    a, b, s = factors[NAMES[k]]
    expected = layer.base_layer(x) + s * (x @ a.T) @ b.T
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.expert_delta(NAMES[k]), s * b @ a)


def test_merged_delta_reproduces_forward():
    layer, state, _, _ = make_layer()
    gates = torch.tensor([0.6, -0.25, 1.3])
    state.gates = gates
    merged = nn.Linear(D_IN, D_OUT)
    with torch.no_grad():
        merged.weight.copy_(layer.base_layer.weight + layer.merged_delta(gates))
        merged.bias.copy_(layer.base_layer.bias)
    x = x_batch()
    torch.testing.assert_close(merged(x), layer(x), rtol=1e-5, atol=1e-5)


def test_expert_factors_round_trip():
    layer, _, factors, _ = make_layer()
    for name in NAMES:
        a, b, s = layer.expert_factors(name)
        a0, b0, s0 = factors[name]
        assert s == s0
        torch.testing.assert_close(a, a0)
        torch.testing.assert_close(b, b0)
    assert list(layer.all_expert_factors()) == list(NAMES)


def test_fused_router_logits_match_separate_linear():
    layer, state, _, rlin = make_layer(router=True)
    state.record = True
    x = x_batch()
    y = layer(x)
    assert len(state.records) == 1
    logits = state.records[0]
    assert logits.shape == (2, 5, K) and not logits.requires_grad
    torch.testing.assert_close(logits, rlin(x), rtol=1e-5, atol=1e-5)
    # token-mode output equals the naive loop with those router probabilities as gates
    torch.testing.assert_close(y, layer.naive_forward(x, rlin(x).softmax(-1)), atol=1e-5, rtol=0)


def test_token_mode_temperature_prefs_and_decode_step():
    layer, state, _, rlin = make_layer(router=True)
    state.temperature = 2.5
    state.prefs = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # (B, K)
    for t in (7, 1):  # prefill and a single-token decode step
        x = x_batch(t=t, seed=t)
        p = (rlin(x) / 2.5).softmax(-1)  # (B, T, K)
        g = p * state.prefs[:, None] / (p * state.prefs[:, None]).sum(-1, keepdim=True)
        torch.testing.assert_close(layer(x), layer.naive_forward(x, g), atol=1e-5, rtol=0)


def test_explicit_gates_override_router():
    layer, state, factors, _ = make_layer(router=True)
    state.gates = torch.tensor([0.0, 1.0, 0.0])
    x = x_batch()
    a, b, s = factors["harmless"]
    torch.testing.assert_close(layer(x), layer.base_layer(x) + s * (x @ a.T) @ b.T)


def test_prefs_without_router_fixed_mode():
    layer, state, _, _ = make_layer()
    state.prefs, state.pref_mode = torch.tensor([0.5, -1.0, 0.2]), "fixed"
    x = x_batch()
    torch.testing.assert_close(layer(x), layer.naive_forward(x, state.prefs), atol=1e-5, rtol=0)


def test_trainable_router_gradients_and_freeze():
    layer, state, _, _ = make_layer()
    rw = torch.randn(K, D_IN, generator=torch.Generator().manual_seed(5)) * 0.1
    layer.attach_router(rw, torch.zeros(K), trainable=True)
    state.record, state.record_grad = True, True
    x = x_batch()
    layer(x)
    logits = state.records[-1]
    assert logits.requires_grad
    F.cross_entropy(logits.reshape(-1, K), torch.zeros(10, dtype=torch.long)).backward()
    assert layer.router_weight.grad.abs().sum() > 0 and layer.router_bias.grad is not None
    assert layer.base_layer.weight.grad is None
    torch.optim.SGD([layer.router_weight, layer.router_bias], lr=1.0).step()
    trained = layer.router_weight.detach().clone()
    assert not torch.allclose(trained, rw)
    state.record = False
    with torch.no_grad():
        y_trained = layer(x)
    layer.freeze_router()  # trained rows written back under A, Parameters gone
    assert layer.router_weight is None and not isinstance(layer.router_bias, nn.Parameter)
    assert not any(p.requires_grad for p in layer.parameters())
    torch.testing.assert_close(layer.lora_A_cat[sum(RANKS) :], trained)
    torch.testing.assert_close(layer(x), y_trained)


def test_bf16_compute_dtype():
    layer, state, _, _ = make_layer(router=True)
    layer = layer.to(torch.bfloat16)
    y = layer(x_batch().to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


def test_guards_and_reset():
    layer, state, factors, _ = make_layer(router=True)
    with pytest.raises(RuntimeError):
        layer.add_expert("extra", *factors["helpful"])
    layer2, _, factors2, _ = make_layer()
    with pytest.raises(ValueError):
        layer2.add_expert("helpful", *factors2["helpful"])
    state.gates, state.record, state.temperature = torch.ones(K), True, 3.0
    state.records.append(torch.zeros(1))
    state.reset()
    assert state.gates is None and not state.record and state.records == []
    assert state.temperature == 1.0


# ------------------------------------------------------------------ inference fast path
# Under no_grad MoCaELinear takes `_fast_forward` (fused router bias, gates folded into B once
# per call, in-place addmm); it must compute exactly what the graph path / naive loop computes.
@pytest.mark.parametrize(
    "gates",
    [
        torch.tensor([0.6, -0.25, 1.3]),  # (K,): folded into B
        torch.tensor([[0.2, 0.5, 0.3], [0.2, 0.5, 0.3]]),  # equal rows: folded
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.3, 0.7]]),  # distinct rows: per-row g_r
        torch.randn(2, 5, K, generator=torch.Generator().manual_seed(4)),  # per token
    ],
)
def test_fast_path_equals_graph_path_and_naive(gates):
    layer, state, _, _ = make_layer()
    state.gates = gates
    x = x_batch()
    slow = layer(x)
    with torch.no_grad():
        fast = layer(x)
        again = layer(x)  # second call hits the per-call cache
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast, layer.naive_forward(x, gates), rtol=0, atol=1e-5)
    assert torch.equal(fast, again) and (layer in state.cache) == (gates.dim() < 3)


def test_fast_path_cache_follows_gate_changes_and_reset():
    layer, state, factors, _ = make_layer()
    x = x_batch()
    state.gates = torch.tensor([1.0, 0.0, 0.0])
    with torch.no_grad():
        layer(x)
        state.gates.mul_(0).add_(torch.tensor([0.0, 0.0, 1.0]))  # in place: version changes
        got = layer(x)
        a, b, s = factors["honest"]
        torch.testing.assert_close(got, layer.base_layer(x) + s * (x @ a.T) @ b.T)
        state.gates = torch.zeros(K)  # all off: exactly the base layer
        assert torch.equal(layer(x), layer.base_layer(x))
    state.reset()
    assert state.cache == {}


def test_fast_path_token_mode_matches_graph_path():
    layer, state, _, rlin = make_layer(router=True)
    state.temperature, state.top_k = 1.7, 2
    state.prefs = torch.tensor([[1.0, 0.5, 2.0], [0.0, 1.0, 1.0]])
    state.record = True
    for t in (6, 1):  # prefill and a decode step
        x = x_batch(t=t, seed=t)
        slow = layer(x)
        with torch.no_grad():
            fast = layer(x)
        torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
        torch.testing.assert_close(state.records[-1], state.records[-2], rtol=0, atol=1e-6)
        assert state.records[-1].shape == (2, t, K) and state.records[-1].is_contiguous()
    layer.attach_router(rlin.weight * 2, rlin.bias)  # new router rows: cached weights rebuilt
    state.prefs = state.top_k = None
    state.temperature = 1.0
    x = x_batch()
    with torch.no_grad():
        got = layer(x)
    want = layer.naive_forward(x, (2 * x @ rlin.weight.T + rlin.bias).softmax(-1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_fast_path_bf16_and_two_dim_input():
    layer, state, _, _ = make_layer(router=True)
    x = x_batch().reshape(10, D_IN)  # (N, d_in) rows, as some callers flatten
    with torch.no_grad():
        y2 = layer(x)
        y3 = layer(x.view(2, 5, D_IN))
        assert torch.equal(y2.view(2, 5, D_OUT), y3)
        lb = layer.to(torch.bfloat16)
        yb = lb(x.to(torch.bfloat16))
    assert yb.dtype == torch.bfloat16 and torch.isfinite(yb).all()


def test_gate_calibration_acts_where_gates_form_in_both_paths():
    """z' = z * w + b per layer changes the gates used; the fast path folds it into the
    router rows and must agree with the graph path and with the explicit formula."""
    layer, state, _, rlin = make_layer(router=True)
    x = x_batch()
    with torch.no_grad():
        raw = layer(x)
    w, b = torch.tensor([2.0, 0.5, 1.5]), torch.tensor([0.3, -0.2, 0.0])
    layer.set_gate_calibration(w, b)
    want = layer.naive_forward(x, ((x @ rlin.weight.T + rlin.bias) * w + b).softmax(-1))
    slow = layer(x)  # grad enabled: graph path
    with torch.no_grad():
        fast = layer(x)  # cached fused weights rebuilt for the new calibration
    torch.testing.assert_close(slow, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast, want, rtol=0, atol=1e-5)
    assert (fast - raw).abs().max() > 1e-4  # the calibration really changed the mixture
    state.record = True
    with torch.no_grad():
        layer(x)
    z = state.records[-1]  # recorded logits are the calibrated ones the gates come from
    torch.testing.assert_close(z, (x @ rlin.weight.T + rlin.bias) * w + b, rtol=0, atol=1e-5)
    layer.set_gate_calibration()  # identity again
    with torch.no_grad():
        torch.testing.assert_close(layer(x), raw, rtol=0, atol=1e-6)
