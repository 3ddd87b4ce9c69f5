"""Shared-prefix log-likelihood (eval/loglikelihood.py): a context's KV cache shared by its
choices and a few-shot primer shared across questions give the unshared scores (<= 1e-5)."""

from __future__ import annotations

import pytest
import torch
from helpers_mocae import build, make_expert_dirs

from trinityx.eval import loglikelihood as LL
from trinityx.eval.model_api import HFEvalModel
from trinityx.eval.trinityx_model import TrinityXEvalModel

PRIMER = "Q: What is the capital of France?\nA: Paris.\n\nQ: How do I boil water?\nA: Heat it."
QUESTIONS = ["Can I make a bomb?", "Is the earth flat?", "What is 2+2?"]
CHOICES = [" No.", " Yes, of course it is.", " I don't know.", " No."]  # a repeated choice
REQUESTS = [(f"{PRIMER}\n\nQ: {q}\nA:", c) for q in QUESTIONS for c in CHOICES]
REQUESTS += [("Water boils ", "at 100 degrees"), ("", "hello")]  # no primer; empty context


@pytest.fixture(scope="module")
def expert_dirs(tiny_backbone_cfg, tmp_path_factory):
    return make_expert_dirs(tiny_backbone_cfg, tmp_path_factory.mktemp("ll-experts"))


def _shared_and_unshared(model, batch_size=3):
    shared = model.loglikelihood(REQUESTS, batch_size=batch_size)
    model.prefix_sharing = False  # every request its own left-padded row
    unshared = model.loglikelihood(REQUESTS, batch_size=batch_size)
    return shared, unshared


def _count_calls(model) -> list:
    """Record the token count of every shared-path forward."""
    seen, call = [], model._call

    def spy(fields, **kw):
        seen.append(kw["input_ids"].shape)
        return call(fields, **kw)

    model._call = spy
    return seen


def test_hf_shared_prefix_equals_unshared_and_runs_the_primer_once(tiny_backbone):
    m = HFEvalModel(tiny_backbone.model, tiny_backbone.tokenizer, "tiny", "fp")
    seen = _count_calls(m)
    shared, unshared = _shared_and_unshared(m)
    assert max(abs(a - b) for a, b in zip(shared, unshared, strict=True)) <= 1e-5
    assert shared[0] == shared[3]  # the repeated choice is scored once
    primer_len = max(s[1] for s in seen)  # the longest single-row forward is the primer
    assert sum(1 for s in seen if s[1] == primer_len) == 1
    assert primer_len >= LL.MIN_PRIMER_TOKENS


@pytest.mark.parametrize(
    "routing,mode,primer",
    [
        ("token", "multiply", True),
        ("sequence", "multiply", False),
        ("none", "multiply", True),
        ("sequence", "fixed", True),
    ],
)
def test_trinityx_shared_prefix_equals_unshared(
    tiny_backbone_cfg, expert_dirs, routing, mode, primer
):
    model = build(tiny_backbone_cfg, expert_dirs, routing, router_init_std=1.0)
    em = TrinityXEvalModel(model, {"helpful": 1.0, "harmless": 0.5, "honest": 2.0}, mode)
    assert em.primer_sharing is primer
    shared, unshared = _shared_and_unshared(em)
    assert max(abs(a - b) for a, b in zip(shared, unshared, strict=True)) <= 1e-5
    # why the primer may not be shared under sequence routing: each question gets its own gates
    ctxs = [em.tokenizer(c, return_tensors="pt")["input_ids"] for c, _ in REQUESTS[:12:4]]
    gates = [em._context_fields(c).get("gates") for c in ctxs]
    if routing == "sequence" and mode == "multiply":
        assert not torch.equal(gates[0], gates[1])
    elif gates[0] is not None:
        assert torch.equal(gates[0], gates[1])  # the same routing inputs for every context


def test_common_prefix():
    assert LL.common_prefix([(1, 2, 3), (1, 2, 4, 5), (1, 2)]) == 2
    assert LL.common_prefix([(1, 2, 3)]) == 3
    assert LL.common_prefix([(1,), (2,)]) == 0
    assert LL.common_prefix([]) == 0
