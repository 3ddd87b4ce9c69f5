"""compose / calibrate stages on the tiny model: router learns, calibration reported, resumable."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trinityx.config import ComposeConfig, RouterTraining, from_dict
from trinityx.model.composed import TrinityXModel
from trinityx.model.router_training import collect_logits, targets_for, train_router
from trinityx.stages import calibrate as calibrate_stage
from trinityx.stages import compose

NAMES = ("helpful", "harmless", "honest")
WORDS = {"helpful": "recipe", "harmless": "weapon", "honest": "myth"}


def _make_experts(tmp_path: Path, backbone_cfg) -> dict[str, str]:
    from peft import LoraConfig, get_peft_model

    from trinityx.model.backbone import load_backbone

    out = {}
    for i, name in enumerate(NAMES):
        torch.manual_seed(i)
        base = load_backbone(backbone_cfg).model
        cfg = LoraConfig(
            r=2 + i,
            lora_alpha=4,
            target_modules=["q_proj", "v_proj", "down_proj"],
            init_lora_weights=False,
        )
        folder = tmp_path / "experts" / name
        get_peft_model(base, cfg).save_pretrained(folder)
        out[name] = str(folder)
    return out


def _routing_file(tmp_path: Path) -> Path:
    """Prompts whose dimension is told by one keyword: learnable by a tiny router."""
    rows = []
    for i in range(96):
        name = NAMES[i % 3]
        rows.append(
            {
                "prompt": f"Tell me about the {WORDS[name]} number {i}.",
                "dimension": name,
                "split": "heldout" if i % 8 < 3 else "train",
            }
        )
    rows.append(
        {"prompt": "A recipe myth?", "weights": {"helpful": 0.5, "honest": 0.5}, "split": "train"}
    )
    path = tmp_path / "routing.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _cfg(tmp_path, backbone_cfg, routing="token", **router) -> ComposeConfig:
    data = _routing_file(tmp_path)
    return from_dict(
        ComposeConfig,
        {
            "experts": _make_experts(tmp_path, backbone_cfg),
            "output_dir": str(tmp_path / f"composed-{routing}"),
            "routing": routing,
            "router_data": [{"path": str(data), "split": "train"}],
            "calibration_data": [{"path": str(data), "split": "heldout"}],
            "backbone": {
                "name": backbone_cfg.name,
                "cache_dir": backbone_cfg.cache_dir,
                "device": "cpu",
            },
            "router": {
                "epochs": 6,
                "batch_size": 8,
                "learning_rate": 3e-2,
                "max_length": 48,
                **router,
            },
        },
    )


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_compose_trains_calibrates_and_saves(tmp_path, family_cfg, routing):
    tiny_backbone_cfg = family_cfg  # both families
    cfg = _cfg(tmp_path, tiny_backbone_cfg, routing)
    out = compose.run(cfg)
    want = "plain" if "gemma" in family_cfg.name else "chatml"
    assert json.loads((out / "manifest.json").read_text())["chat_template"] == want
    report = json.loads((out / "report.json").read_text())
    cal = report["calibration"]
    for key in ("ece", "brier", "nll", "accuracy"):
        assert key in cal["before"] and key in cal["after"]
        lo, hi = cal["after"][f"{key}_ci"]
        assert lo <= cal["after"][key] + 1e-9 and cal["after"][key] <= hi + 1e-9
    # Three disjoint prompt sets; the held-out 36 split into fit and test, reported on test.
    sets = report["prompt_sets"]
    assert sets["calibration_fit"]["n"] + sets["calibration_test"]["n"] == 36
    assert cal["n_test"] == sets["calibration_test"]["n"] == 18
    assert len({s["sha256"] for s in sets.values()}) == 3
    assert report["router_training"]["train_accuracy_last_epoch"] > 0.6  # the keyword is learnable
    assert cal["before"]["accuracy"] > report["test_accuracy_untrained"]
    if routing == "sequence":
        assert cal["after"]["accuracy"] == cal["before"]["accuracy"]  # T keeps the argmax
    else:  # gates of every layer reported before/after; what the layer fit optimises improves
        # (the decision after it is not asserted: the tiny model's random experts are as large
        # as its weights, so re-scaled gates move the hidden states later routers see)
        n_layers = len(cal["gates_after"]["ece_per_layer"])
        assert n_layers == len(cal["fitted"]["layer_temperatures"]) > 1
        assert cal["gates_after"]["pooled_ece"] < cal["gates_before"]["pooled_ece"]
        assert (out / "layer_ece.png").stat().st_size > 5000
    assert "calibration_test" in (out / "report.md").read_text()
    assert sum(report["prior"]["gamma"].values()) == pytest.approx(1.0)
    assert (out / "reliability.png").stat().st_size > 5000
    assert (out / "routing_heatmap.png").stat().st_size > 5000
    # The artifact reloads with its calibration and routes identically.
    model = TrinityXModel.from_pretrained(out, tiny_backbone_cfg)
    fitted = cal["fitted"] if routing == "sequence" else cal["fitted"]["decision"]
    assert model.temperature == pytest.approx(fitted["temperature"])
    res = model.generate(["Tell me about the weapon number 3."], max_new_tokens=3)
    assert len(res.texts) == 1 and set(res.routing[0]) >= {"gates"}


def test_calibration_prompts_must_be_held_out(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg)
    cfg.calibration_data = cfg.router_data
    with pytest.raises(ValueError, match="held-out"):
        compose.run(cfg)


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_resumed_router_training_equals_uninterrupted(tmp_path, tiny_backbone_cfg, routing):
    """Optimizer and RNG state travel in the checkpoint: 2 epochs + resume to 3 == 3 straight."""
    from trinityx.data.routing_sets import load_routing
    from trinityx.model.backbone import load_backbone

    cfg = _cfg(tmp_path, tiny_backbone_cfg, routing)
    examples = load_routing(cfg, cfg.router_data)
    prior = torch.full((3,), 1 / 3)
    rt = dict(batch_size=8, learning_rate=3e-2, max_length=48)

    def fresh():
        return TrinityXModel.build(load_backbone(tiny_backbone_cfg), cfg.experts, routing)

    straight = fresh()
    full = train_router(straight, examples, RouterTraining(epochs=3, **rt), prior, 0)
    ckpt = tmp_path / "ckpt"
    first = train_router(fresh(), examples, RouterTraining(epochs=2, **rt), prior, 0, ckpt)
    assert {h["epoch"] for h in first} == {1, 2}
    resumed = fresh()
    more = train_router(resumed, examples, RouterTraining(epochs=3, **rt), prior, 0, ckpt)
    assert [h["total"] for h in more] == pytest.approx([h["total"] for h in full], abs=1e-6)
    a, b = straight.router_tensors(), resumed.router_tensors()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    # training moved the routers, so the equality above is not between untouched inits
    assert any(not torch.equal(a[k], fresh().router_tensors()[k]) for k in a)


def test_stale_partial_is_refused_then_discarded_with_restart(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, "sequence")
    work = Path(cfg.output_dir + ".partial")
    other = _cfg(tmp_path, tiny_backbone_cfg, "sequence", epochs=2)
    from trinityx.config import dump_yaml

    work.mkdir(parents=True)
    (work / "config.yaml").write_text(dump_yaml(other))
    (work / "router_ckpt").mkdir()
    with pytest.raises(ValueError, match=r"router.*restart=true"):
        compose.run(cfg)
    cfg.restart = True
    out = compose.run(cfg)
    assert (out / "manifest.json").is_file() and not work.exists()


def test_recalibrate_stage(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, "sequence")
    out = compose.run(cfg)
    from trinityx.config import CalibrateConfig

    rc = from_dict(
        CalibrateConfig,
        {
            "model_dir": str(out),
            "output_dir": str(tmp_path / "recal"),
            "calibration_data": [{"path": cfg.router_data[0].path, "split": "train"}],
            "calibration": {"method": "vector"},
        },
    )
    out2 = calibrate_stage.run(rc)
    report = json.loads((out2 / "report.json").read_text())
    assert report["calibration"]["method"] == "vector"
    assert report["recalibration"]["from"] == str(out)
    model = TrinityXModel.from_pretrained(out2, tiny_backbone_cfg)
    assert model.vector_scaling is not None


def test_routing_labels_must_name_an_expert(tmp_path, tiny_backbone_cfg):
    from trinityx.data.records import RoutingExample, user_prompt
    from trinityx.model.backbone import load_backbone

    cfg = _cfg(tmp_path, tiny_backbone_cfg)
    model = TrinityXModel.build(load_backbone(tiny_backbone_cfg), cfg.experts, "sequence")
    bad = [RoutingExample(user_prompt("x"), {"creative": 1.0}, source="f.jsonl:3")]
    with pytest.raises(ValueError, match="f.jsonl:3"):
        targets_for(model, bad)
    assert collect_logits(model, [RoutingExample(user_prompt("x"), {"helpful": 1.0})]).shape == (
        1,
        3,
    )


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_optional_lm_loss_reaches_the_router(tmp_path, tiny_backbone_cfg, routing):
    from trinityx.data.records import SFTExample, user_prompt
    from trinityx.model.backbone import load_backbone
    from trinityx.model.router_training import lm_loss

    cfg = _cfg(tmp_path, tiny_backbone_cfg, routing)
    model = TrinityXModel.build(load_backbone(tiny_backbone_cfg), cfg.experts, routing)
    params = model.router_parameters()
    batch = [SFTExample(user_prompt("Tell me about the myth."), "It is a myth.")] * 2
    loss = lm_loss(model, batch, 48)
    loss.backward()
    assert loss.item() > 0 and any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_compose_with_lm_loss(tmp_path, family_cfg):
    cfg = _cfg(tmp_path, family_cfg, "token", epochs=1, lm_weight=0.5)
    lm_file = tmp_path / "lm.jsonl"
    lm_file.write_text(
        json.dumps({"prompt": "Tell me about the myth.", "response": "A myth."}) + "\n"
    )
    from trinityx.config import DataSource

    cfg.lm_data = [DataSource(path=str(lm_file))]
    out = compose.run(cfg)
    history = json.loads((out / "router_history.json").read_text())
    assert all(h["lm"] > 0 for h in history)
    # the LM term moves the router: the same run without it (same seed) ends elsewhere
    plain = dataclasses.replace(
        cfg,
        router=dataclasses.replace(cfg.router, lm_weight=0.0),
        output_dir=str(tmp_path / "plain"),
    )
    with_lm = load_file(str(out / "router.safetensors"))
    without = load_file(str(compose.run(plain) / "router.safetensors"))
    assert with_lm.keys() == without.keys()
    assert max((with_lm[k] - without[k]).abs().max().item() for k in with_lm) > 1e-6


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_reported_after_metrics_are_the_test_split_under_the_saved_model(
    tmp_path, tiny_backbone_cfg, routing
):
    """Recompute "after" from the saved artifact on the test prompts alone: same numbers, and
    those prompts are disjoint from the ones the calibration was fitted on."""
    from trinityx.data.records import prompt_text
    from trinityx.data.routing_sets import calibration_sets
    from trinityx.nn.calibration import ece

    cfg = _cfg(tmp_path, tiny_backbone_cfg, routing)
    out = compose.run(cfg)
    cal = json.loads((out / "report.json").read_text())["calibration"]
    fit_ex, test_ex, _ = calibration_sets(cfg, list(cfg.experts), cfg.seed)
    assert not {prompt_text(e.messages) for e in fit_ex} & {
        prompt_text(e.messages) for e in test_ex
    }
    model = TrinityXModel.from_pretrained(out, tiny_backbone_cfg)
    ids, mask = model.encode([list(e.messages) for e in test_ex])
    probs = model.router_probs(ids[:, -48:], mask[:, -48:])  # the gates the model uses
    y = targets_for(model, test_ex)
    assert cal["n_test"] == len(test_ex)
    assert ece(probs, y) == pytest.approx(cal["after"]["ece"], abs=1e-5)
    acc = float((probs.argmax(-1) == y.argmax(-1)).float().mean())
    assert acc == pytest.approx(cal["after"]["accuracy"], abs=1e-6)


def test_top1_routing_is_saved_and_used(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, "sequence")
    cfg.top_k = 1
    out = compose.run(cfg)
    report = json.loads((out / "report.json").read_text())
    assert report["top_k"] == 1 and "top1" in report["calibration"]
    model = TrinityXModel.from_pretrained(out, tiny_backbone_cfg)
    assert model.top_k == 1
    res = model.generate(["Tell me about the weapon number 3."], max_new_tokens=2)
    gates = list(res.routing[0]["gates"].values())
    assert sorted(gates)[:2] == [0.0, 0.0] and max(gates) == pytest.approx(1.0)
    soft = model.generate(["Tell me about the weapon number 3."], max_new_tokens=2, top_k=3)
    assert sorted(soft.routing[0]["gates"].values())[0] > 0  # a request may ask for soft gates
