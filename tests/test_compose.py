"""compose / calibrate stages on the tiny model: router learns, calibration reported, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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
        cfg = LoraConfig(r=2 + i, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"],
                         init_lora_weights=False)
        folder = tmp_path / "experts" / name
        get_peft_model(base, cfg).save_pretrained(folder)
        out[name] = str(folder)
    return out


def _routing_file(tmp_path: Path) -> Path:
    """Prompts whose dimension is told by one keyword: learnable by a tiny router."""
    rows = []
    for i in range(60):
        name = NAMES[i % 3]
        rows.append({"prompt": f"Tell me about the {WORDS[name]} number {i}.", "dimension": name,
                     "split": "heldout" if i % 4 == 0 else "train"})
    rows.append({"prompt": "A recipe myth?", "weights": {"helpful": 0.5, "honest": 0.5},
                 "split": "train"})
    path = tmp_path / "routing.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _cfg(tmp_path, backbone_cfg, routing="token", **router) -> ComposeConfig:
    data = _routing_file(tmp_path)
    return from_dict(ComposeConfig, {
        "experts": _make_experts(tmp_path, backbone_cfg),
        "output_dir": str(tmp_path / f"composed-{routing}"),
        "routing": routing,
        "router_data": [{"path": str(data), "split": "train"}],
        "calibration_data": [{"path": str(data), "split": "heldout"}],
        "backbone": {"name": backbone_cfg.name, "cache_dir": backbone_cfg.cache_dir,
                     "device": "cpu"},
        "router": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-2, "max_length": 48,
                   **router},
    })


@pytest.mark.parametrize("routing", ["token", "sequence"])
def test_compose_trains_calibrates_and_saves(tmp_path, tiny_backbone_cfg, routing):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, routing)
    out = compose.run(cfg)
    report = json.loads((out / "report.json").read_text())
    cal = report["calibration"]
    for key in ("ece", "brier", "nll", "accuracy"):
        assert key in cal["before"] and key in cal["after"]
    assert cal["after"]["nll"] <= cal["before"]["nll"] + 1e-6  # T is fitted by NLL on this split
    assert report["router_training"]["train_accuracy"] > 0.6  # the keyword is learnable
    assert cal["after"]["accuracy"] > report["heldout_accuracy_untrained"]
    assert sum(report["prior"]["gamma"].values()) == pytest.approx(1.0)
    assert (out / "reliability.png").stat().st_size > 5000
    assert (out / "routing_heatmap.png").stat().st_size > 5000
    # The artifact reloads with its calibration and routes identically.
    model = TrinityXModel.from_pretrained(out, tiny_backbone_cfg)
    assert model.temperature == pytest.approx(cal["temperature"])
    res = model.generate(["Tell me about the weapon number 3."], max_new_tokens=3)
    assert len(res.texts) == 1 and set(res.routing[0]) >= {"gates"}


def test_calibration_prompts_must_be_held_out(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg)
    cfg.calibration_data = cfg.router_data
    with pytest.raises(ValueError, match="held-out"):
        compose.run(cfg)


def test_router_training_resumes_after_last_epoch(tmp_path, tiny_backbone_cfg):
    from trinityx.model.backbone import load_backbone
    from trinityx.stages.compose import load_routing

    cfg = _cfg(tmp_path, tiny_backbone_cfg)
    examples = load_routing(cfg, cfg.router_data)
    model = TrinityXModel.build(load_backbone(tiny_backbone_cfg), cfg.experts, "token")
    ckpt = tmp_path / "ckpt"
    prior = torch.full((3,), 1 / 3)
    first = train_router(model, examples, RouterTraining(epochs=2, batch_size=8), prior, 0, ckpt)
    assert {h["epoch"] for h in first} == {1, 2}
    assert len(list(ckpt.glob("router_epoch*.safetensors"))) == 2
    model2 = TrinityXModel.build(load_backbone(tiny_backbone_cfg), cfg.experts, "token")
    more = train_router(model2, examples, RouterTraining(epochs=3, batch_size=8), prior, 0, ckpt)
    assert {h["epoch"] for h in more} == {3}  # epochs 1-2 restored from disk, not redone


def test_recalibrate_stage(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, "sequence")
    out = compose.run(cfg)
    from trinityx.config import CalibrateConfig

    rc = from_dict(CalibrateConfig, {
        "model_dir": str(out), "output_dir": str(tmp_path / "recal"),
        "calibration_data": [{"path": cfg.router_data[0].path, "split": "train"}],
        "calibration": {"method": "vector"},
    })
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
        1, 3)


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


def test_compose_with_lm_loss(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, "token", epochs=1, lm_weight=0.5)
    lm_file = tmp_path / "lm.jsonl"
    lm_file.write_text(json.dumps({"prompt": "Tell me about the myth.", "response": "A myth."}) + "\n")
    from trinityx.config import DataSource

    cfg.lm_data = [DataSource(path=str(lm_file))]
    out = compose.run(cfg)
    history = json.loads((out / "router_history.json").read_text())
    assert all("lm" in h for h in history)
