"""Gate arithmetic, routers, router loss and the task-vector prior."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trinityx.nn.prior import lowrank_inner, task_vector_cosines, task_vector_prior
from trinityx.nn.router import SequenceRouter, TokenRouter, combine_gates, router_loss

P = torch.tensor([0.5, 0.3, 0.2])


def close(a, b, atol=1e-6):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=atol, rtol=0)


# ------------------------------------------------------------------ combine_gates
def test_no_prefs_returns_router_probs():
    close(combine_gates(P, None), P)


def test_multiply_is_normalised_product():
    close(combine_gates(P, torch.ones(3)), P)
    close(combine_gates(P, torch.tensor([1.0, 0.0, 0.0])), [1.0, 0.0, 0.0])
    close(combine_gates(P, torch.tensor([2.0, 1.0, 0.0])), torch.tensor([1.0, 0.3, 0.0]) / 1.3)


def test_negative_pref_negates_expert():
    g = combine_gates(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([1.0, -1.0, 0.0]))
    close(g, [0.5, -0.5, 0.0])
    assert g.abs().sum().item() == pytest.approx(1.0)


def test_fixed_ignores_router_and_broadcasts():
    probs = torch.rand(2, 4, 3)
    pi = torch.tensor([0.2, -0.7, 1.5])
    g = combine_gates(probs, pi, "fixed")
    assert g.shape == (2, 4, 3)
    close(g, pi.expand(2, 4, 3))
    with pytest.raises(ValueError):
        combine_gates(probs, pi, "add")


def test_top_k_keeps_largest_magnitudes_and_mass():
    close(combine_gates(P, None, top_k=1), [1.0, 0.0, 0.0])
    g = combine_gates(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([1.0, -1.0, 1.0]), top_k=2)
    close(g, [0.625, -0.375, 0.0])
    assert g.abs().sum().item() == pytest.approx(1.0)
    close(combine_gates(P, None, top_k=3), P)  # k >= K is a no-op


def test_batch_prefs_broadcast_over_tokens():
    probs = torch.softmax(torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)), -1)
    prefs = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, 1.0]])
    g = combine_gates(probs, prefs)
    assert g.shape == (2, 5, 3)
    for b in range(2):
        close(g[b], combine_gates(probs[b], prefs[b]))
    assert g[0, :, 1].abs().max() == 0 and g[1, :, 0].abs().max() == 0


# ------------------------------------------------------------------ routers
def test_token_router_starts_near_uniform():
    r = TokenRouter(32, 3)
    probs = r(torch.randn(4, 7, 32)).softmax(-1)
    assert probs.shape == (4, 7, 3)
    assert (probs - 1 / 3).abs().max() < 0.02


def test_sequence_router_ignores_padding():
    torch.manual_seed(0)
    r = SequenceRouter(16, 3, hidden=8)
    h = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    out = r(h, mask)
    assert out.shape == (2, 3)
    h2 = h.clone()
    h2[0, 4:] = 1e3  # garbage in padded positions
    close(r(h2, mask), out, atol=1e-5)
    close(r(h[:1, :4]), out[:1], atol=1e-5)  # same as the unpadded prompt
    assert not torch.allclose(r(h2), r(h))  # without the mask the padding would leak in


# ------------------------------------------------------------------ router_loss
def test_router_loss_parts_sum_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(8, 3, requires_grad=True)
    targets = torch.softmax(torch.randn(8, 3), -1)
    prior = torch.tensor([0.5, 0.3, 0.2])
    total, parts = router_loss(logits, targets, prior, entropy_weight=0.1, kl_weight=0.5)
    assert parts["ce"] + parts["entropy_term"] + parts["kl_term"] == pytest.approx(parts["total"])
    assert parts["total"] == pytest.approx(total.item())
    assert parts["entropy_term"] == pytest.approx(0.1 * parts["entropy"])
    assert parts["kl"] > 0
    total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_router_loss_ce_matches_cross_entropy_for_int_labels():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    total, parts = router_loss(logits, labels)
    assert total.item() == pytest.approx(F.cross_entropy(logits, labels).item(), abs=1e-6)
    assert parts["kl_term"] == 0.0 and parts["entropy_term"] == 0.0


def test_router_kl_zero_at_prior_and_entropy_penalises_diffuse():
    prior = torch.tensor([0.6, 0.3, 0.1])
    logits = prior.log().expand(5, 3).clone()  # every row routes exactly like the prior
    _, parts = router_loss(logits, torch.zeros(5, dtype=torch.long), prior, kl_weight=1.0)
    assert abs(parts["kl"]) < 1e-6
    _, parts = router_loss(logits, torch.zeros(5, dtype=torch.long), None, kl_weight=1.0)
    assert parts["kl"] > 0.05  # uniform prior differs
    y = torch.zeros(4, dtype=torch.long)
    sharp = router_loss(torch.tensor([[5.0, 0, 0]] * 4), y, entropy_weight=1.0)[1]["entropy_term"]
    flat = router_loss(torch.zeros(4, 3), y, entropy_weight=1.0)[1]["entropy_term"]
    assert flat == pytest.approx(math.log(3)) and flat > sharp


# ------------------------------------------------------------------ task-vector prior
def rand_factors(g, r, d_in=10, d_out=8, s=1.0):
    return torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g), s


def test_lowrank_inner_equals_materialised():
    g = torch.Generator().manual_seed(0)
    a1, b1, _ = rand_factors(g, 3)
    a2, b2, _ = rand_factors(g, 5)
    a1, b1, a2, b2 = a1.double(), b1.double(), a2.double(), b2.double()
    dense = ((0.7 * b1 @ a1) * (1.9 * b2 @ a2)).sum()  # materialised (d_out, d_in)
    close(lowrank_inner(a1, b1, 0.7, a2, b2, 1.9), dense.item(), atol=1e-8)


def test_cosines_match_flattened_concatenation():
    g = torch.Generator().manual_seed(1)
    names = ("helpful", "harmless", "honest")
    layers = [{n: rand_factors(g, r) for n, r in zip(names, (2, 3, 4), strict=True)}]
    layers.append({n: rand_factors(g, 2, d_in=6, d_out=5, s=0.5) for n in names})

    def flat(n):
        return torch.cat([(lay[n][2] * lay[n][1] @ lay[n][0]).flatten() for lay in layers])

    tv = torch.stack([flat(n) for n in names])  # (K, D)
    ref = tv.mean(0)
    expected = F.cosine_similarity(tv, ref[None], dim=-1)
    close(task_vector_cosines(layers, "mean"), expected, atol=1e-5)


def test_prior_uniform_for_symmetric_experts_and_favours_aligned():
    eye_in, eye_out = torch.eye(6), torch.eye(5)
    names = ("helpful", "harmless", "honest")
    layer = {n: (eye_in[k : k + 1], eye_out[:, k : k + 1], 2.0) for k, n in enumerate(names)}
    layers = [layer, layer]
    close(task_vector_prior(layers, "mean"), torch.full((3,), 1 / 3), atol=1e-6)
    close(task_vector_prior(layers, None), torch.full((3,), 1 / 3))
    # a reference mostly along "harmless" (e.g. a multi-task LoRA): harmless gets the most mass
    ref_a = torch.stack([eye_in[0] * 0.2, eye_in[1], eye_in[2] * 0.2])  # (3, d_in)
    ref = [(ref_a, eye_out[:, :3], 1.0)] * 2
    prior = task_vector_prior(layers, ref, temperature=0.5)
    assert prior.argmax().item() == 1 and prior[1] > prior[0] + 0.2
    close(prior.sum(), 1.0)
    close(prior[0], prior[2])
    sharper = task_vector_prior(layers, [{"mt": r} for r in ref], temperature=0.1)
    assert sharper[1] > prior[1]
