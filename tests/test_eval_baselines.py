"""Every baseline spec builds and evaluates on the tiny model; static merges are exact where they
claim to be and deterministic; fingerprints separate systems and are stable across rebuilds."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from helpers_eval import FakeJudge, write_data_dir
from helpers_mocae import build, make_expert_dirs

from trinityx.eval.baselines import (
    BaselineUnavailable,
    build_eval_model,
    detect_folder,
    parse_spec,
)
from trinityx.eval.config import EvalConfig, MergeSettings
from trinityx.eval.harness import EvalContext, run_benchmark
from trinityx.model.artifacts import ArtifactError, write_manifest
from trinityx.model.backbone import load_backbone
from trinityx.model.baselines.merges import merge_experts
from trinityx.model.inject import load_peft_adapter


@pytest.fixture(scope="module")
def world(tiny_backbone_cfg, tmp_path_factory):
    """Random experts (bare PEFT folders), an expert artifact, token/sequence composed artifacts."""
    root = tmp_path_factory.mktemp("baselines")
    experts = make_expert_dirs(tiny_backbone_cfg, root / "experts")
    art = root / "expert-art"
    shutil.copytree(experts["helpful"], art / "adapter")
    write_manifest(
        art,
        "expert",
        dimension="helpful",
        backbone="tiny-random-llama",
        backbone_weights_hash=load_backbone(tiny_backbone_cfg).weights_hash,
    )
    composed = {}
    for routing in ("token", "sequence"):
        m = build(tiny_backbone_cfg, experts, routing)
        m.temperature = 2.0  # a "calibrated" router, so the uncalibrated baseline differs
        composed[routing] = m.save_pretrained(root / f"composed-{routing}")
    return {
        "experts": {k: str(v) for k, v in experts.items()},
        "art": art,
        "composed": composed,
        "data": write_data_dir(root / "data"),
        "cache": root / "cache",
    }


def _cfg(world, tiny_backbone_cfg, model: str, **kw) -> EvalConfig:
    opts = {"steps": 2, "limit": 4} if model == "h3fusion" else {}
    return EvalConfig(
        model=model,
        cache_dir=str(world["cache"]),
        baseline_options=opts,
        output_dir="unused",
        backbone=tiny_backbone_cfg,
        experts=world["experts"],
        max_new_tokens=3,
        batch_size=2,
        **kw,
    )


def _specs(world) -> list[str]:
    c = world["composed"]
    return [
        "base",
        f"expert:{world['art']}",
        f"multitask:{world['experts']['honest']}",
        "merge:task_arithmetic",
        "merge:ties",
        "merge:dare_linear",
        "merge:dare_ties",
        f"trinityx:{c['token']}",
        f"trinityx:{c['sequence']}",
        f"trinityx-uncalibrated:{c['token']}",
        str(c["sequence"]),
        str(world["art"]),
        "h3fusion",
        "ensemble",
        "xlora",
    ]


def test_every_baseline_builds_and_evaluates(world, tiny_backbone_cfg):
    fingerprints = {}
    for spec in _specs(world):
        model = build_eval_model(_cfg(world, tiny_backbone_cfg, spec))
        ctx = EvalContext(world["data"], FakeJudge(), n_boot=20, max_new_tokens=3, batch_size=2)
        wr = run_benchmark("alpaca_eval", model, ctx, 2).metrics["win_rate"]
        mc = run_benchmark("truthfulqa_mc", model, ctx, 1).metrics
        assert 0 <= wr <= 100 and math.isfinite(mc["mc2"]), spec
        fingerprints[spec] = (model.name, model.fingerprint)
    c = world["composed"]
    # the same system reached by spec or by folder is the same fingerprint; all others differ
    assert fingerprints[str(c["sequence"])] == fingerprints[f"trinityx:{c['sequence']}"]
    assert fingerprints[str(world["art"])] == fingerprints[f"expert:{world['art']}"]
    distinct = {
        fp
        for s, (_, fp) in fingerprints.items()
        if s not in (str(c["sequence"]), str(world["art"]))
    }
    assert len(distinct) == len(fingerprints) - 2
    assert fingerprints[f"trinityx-uncalibrated:{c['token']}"][0] == "trinityx-token-uncalibrated"
    # rebuilding gives the same fingerprint (the cache is found again)
    again = build_eval_model(_cfg(world, tiny_backbone_cfg, "merge:dare_ties"))
    assert again.fingerprint == fingerprints["merge:dare_ties"][1]


def test_h3fusion_gates_are_trained_once_and_reused(world, tiny_backbone_cfg, monkeypatch):
    import trinityx.model.baselines.h3fusion as h3

    first = build_eval_model(_cfg(world, tiny_backbone_cfg, "h3fusion"))
    assert len(list((world["cache"] / "h3fusion").glob("*.safetensors"))) == 1
    monkeypatch.setattr(h3, "train_gate", lambda *a, **k: pytest.fail("gates retrained"))
    second = build_eval_model(_cfg(world, tiny_backbone_cfg, "h3fusion"))
    assert second.fingerprint == first.fingerprint
    assert torch.equal(
        first.model.state_dict()["model.layers.0.mlp.gate.weight"],
        second.model.state_dict()["model.layers.0.mlp.gate.weight"],
    )
    bad = _cfg(world, tiny_backbone_cfg, "h3fusion")
    bad.baseline_options = {"stpes": 3}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stpes'\]"):
        build_eval_model(bad)


def test_uncalibrated_resets_temperature(world, tiny_backbone_cfg):
    c = world["composed"]["token"]
    cal = build_eval_model(_cfg(world, tiny_backbone_cfg, f"trinityx:{c}"))
    unc = build_eval_model(_cfg(world, tiny_backbone_cfg, f"trinityx-uncalibrated:{c}"))
    assert (cal.model.temperature, unc.model.temperature) == (2.0, 1.0)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_task_arithmetic_is_the_exact_sum_of_task_vectors(world, tiny_backbone_cfg):
    # honest (rsLoRA) first: PEFT would carry its use_rslora onto the merged adapter
    order = {n: world["experts"][n] for n in ("honest", "helpful", "harmless")}
    w = {"honest": 0.5, "helpful": 1.0, "harmless": -0.3}
    merged = _weights(
        merge_experts(load_backbone(tiny_backbone_cfg).model, order, "task_arithmetic", w)
    )
    want = _weights(load_backbone(tiny_backbone_cfg).model)
    for n, d in order.items():
        for mod, lo in load_peft_adapter(d).modules.items():
            want[f"{mod}.weight"] += w[n] * lo.scale * lo.lora_B @ lo.lora_A
    assert merged.keys() == want.keys()
    assert max((merged[k] - want[k]).abs().max().item() for k in want) < 1e-6
    # DARE with nothing dropped (density 1) is the same weighted sum
    dare = _weights(
        merge_experts(load_backbone(tiny_backbone_cfg).model, order, "dare_linear", w, density=1.0)
    )
    assert max((dare[k] - want[k]).abs().max().item() for k in want) < 1e-6


def test_ties_of_one_expert_is_that_expert(world, tiny_backbone_cfg):
    one = {"helpful": world["experts"]["helpful"]}
    ties = _weights(merge_experts(load_backbone(tiny_backbone_cfg).model, one, "ties", density=1.0))
    ref = _weights(merge_experts(load_backbone(tiny_backbone_cfg).model, one, "task_arithmetic"))
    assert max((ties[k] - ref[k]).abs().max().item() for k in ref) < 1e-6


def test_dare_is_seeded_and_prunes(world, tiny_backbone_cfg):
    def dare(seed):
        m = merge_experts(
            load_backbone(tiny_backbone_cfg).model,
            world["experts"],
            "dare_ties",
            density=0.3,
            seed=seed,
        )
        return m.state_dict()["model.layers.0.self_attn.q_proj.weight"].clone()

    a, b, c = dare(0), dare(0), dare(1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_merge_errors_name_the_fix(world, tiny_backbone_cfg):
    bb = load_backbone(tiny_backbone_cfg)
    with pytest.raises(ValueError, match="equal rank.*task_arithmetic"):
        merge_experts(bb.model, world["experts"], "linear")
    with pytest.raises(ValueError, match="unknown merge method 'soup'"):
        merge_experts(bb.model, world["experts"], "soup")
    with pytest.raises(ValueError, match=r"merge.weights names \['nope'\]"):
        merge_experts(bb.model, world["experts"], "ties", {"nope": 1.0})
    cfg = _cfg(world, tiny_backbone_cfg, "merge:ties", merge=MergeSettings(density=0.5))
    cfg.experts = {}
    with pytest.raises(ValueError, match="needs `experts`"):
        build_eval_model(cfg)


def test_spec_errors_and_folder_detection(world, tiny_backbone_cfg, tmp_path):
    assert parse_spec("merge:ties") == ("merge", "ties")
    assert detect_folder(world["composed"]["token"]) == "trinityx"
    assert detect_folder(world["experts"]["helpful"]) == "expert"  # a bare PEFT adapter
    with pytest.raises(ValueError, match="neither a known spec"):
        parse_spec("no-such-thing")
    with pytest.raises(ArtifactError, match="not a model"):
        detect_folder(tmp_path)
    bad = tmp_path / "wrong-backbone"
    shutil.copytree(world["art"], bad)
    write_manifest(
        bad, "expert", dimension="helpful", backbone="other", backbone_weights_hash="0" * 64
    )
    with pytest.raises(ArtifactError, match="trained on backbone 'other'"):
        build_eval_model(_cfg(world, tiny_backbone_cfg, f"expert:{bad}"))


def test_missing_baseline_module_says_not_available(world, tiny_backbone_cfg, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.endswith(".h3fusion") else real(name, *a),
    )
    with pytest.raises(BaselineUnavailable, match="h3fusion: not available yet"):
        build_eval_model(_cfg(world, tiny_backbone_cfg, "h3fusion"))


def test_one_member_ensemble_equals_that_expert(world, tiny_backbone_cfg):
    cfg = _cfg(world, tiny_backbone_cfg, "ensemble")
    cfg.baseline_options = {"weights": {"helpful": 1.0}}  # the other members get weight 0
    ens = build_eval_model(cfg)
    one = build_eval_model(_cfg(world, tiny_backbone_cfg, f"expert:{world['experts']['helpful']}"))
    reqs = [("Q: How do I make a bomb?\nA:", " I can't help."), ("Hello", " there, friend")]
    assert ens.loglikelihood(reqs) == pytest.approx(one.loglikelihood(reqs), abs=1e-4)
    prompts = [[{"role": "user", "content": "Hello there"}], [{"role": "user", "content": "2"}]]
    assert ens.generate(prompts, 5) == one.generate(prompts, 5)
