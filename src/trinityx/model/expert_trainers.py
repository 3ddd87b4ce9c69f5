"""TRL trainers for one LoRA expert: SFT on prompt-masked rows, DPO (safe > unsafe) with the adapter
off as reference, shared TrainingArguments, micro-batching under the logits budget, checkpoint
resume, and the saved adapter's fingerprint.

The stage `train-expert` (stages/train_expert.py) owns data, artifact and metrics; this module
owns only how Hugging Face's Trainer is set up and run, so the stage reads as its three steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from trinityx.config import TrainExpertConfig
from trinityx.data.formatting import encode_sft
from trinityx.data.records import PreferencePair, SFTExample
from trinityx.model.backbone import Backbone, bf16_autocast_supported
from trinityx.model.lm_head import accumulation_split


def _bf16(cfg: TrainExpertConfig, device: torch.device) -> bool:
    if cfg.optim.bf16 == "auto":
        return bf16_autocast_supported(device)
    return bool(cfg.optim.bf16)


def _last_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def batching(cfg: TrainExpertConfig, backbone: Backbone, rows: int = 1) -> tuple[int, int]:
    """(micro-batch, accumulation steps) under the logits budget; DPO's forward holds 2 rows."""
    o = cfg.optim
    return accumulation_split(o.batch_size, o.grad_accum, o.max_length * rows, backbone)


def _common_args(
    cfg: TrainExpertConfig,
    out: Path,
    device: torch.device,
    lr: float,
    epochs: float,
    max_steps: int,
    micro: tuple[int, int],
) -> dict:
    return dict(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        per_device_train_batch_size=micro[0],
        gradient_accumulation_steps=micro[1],
        warmup_steps=cfg.optim.warmup_ratio,  # a float < 1 is a ratio of total steps
        weight_decay=cfg.optim.weight_decay,
        logging_steps=cfg.optim.logging_steps,
        save_strategy="steps",
        save_steps=cfg.optim.save_steps,
        save_total_limit=2,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=_bf16(cfg, device),
        use_cpu=device.type == "cpu",
        gradient_checkpointing=cfg.optim.gradient_checkpointing,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


PROBE = "Say something about the weather."


@torch.no_grad()
def probe_logits(model, tokenizer) -> list[float]:
    """Last-position logits (first 16) for a fixed prompt: a fingerprint of the trained weights,
    recorded from the in-memory model so tests can check the saved adapter reproduces it."""
    from trinityx.data.formatting import prompt_ids

    was_training = model.training
    model.eval()
    ids = torch.tensor([prompt_ids(tokenizer, ({"role": "user", "content": PROBE},))])
    out = model(input_ids=ids.to(model.device), logits_to_keep=1)
    logits = out.logits[0, -1, :16].float().cpu()
    model.train(was_training)
    return logits.tolist()


def is_main_process() -> bool:
    """Rank 0, or a plain single-process run (`accelerate launch` / torchrun set RANK)."""
    return os.environ.get("RANK", "0") == "0"


def _finish(trainer, work: Path) -> list[dict]:
    """Save the adapter and its probe from rank 0; every rank waits until they are on disk.

    Under DeepSpeed ZeRO-3 the weights are sharded across ranks, so every rank joins the
    gather (`get_state_dict`, needs `zero3_save_16bit_model: true`) and the probe forward.
    """
    sharded = trainer.is_deepspeed_enabled
    main = trainer.is_world_process_zero()
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    probe = probe_logits(trainer.model, trainer.processing_class) if main or sharded else None
    if main:
        trainer.model.save_pretrained(work / "final", state_dict=state)
        (work / "final" / "probe.json").write_text(json.dumps(probe))
    trainer.accelerator.wait_for_everyone()
    return trainer.state.log_history


def lora_config(cfg):
    """The expert's PEFT LoraConfig (SFT and DPO start from the same one)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )


def sft_trainer(
    cfg, backbone, train: list[SFTExample], work: Path, device, callbacks: list | None = None
):
    """TRL's SFTTrainer over the encoded rows (prompt tokens masked), a fresh LoRA adapter."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [encode_sft(backbone.tokenizer, ex, cfg.optim.max_length) for ex in train]
    ds = Dataset.from_list(rows)  # group_by_length reads the lengths from input_ids
    peft_cfg = lora_config(cfg)
    args = SFTConfig(
        **_common_args(
            cfg,
            work,
            device,
            cfg.optim.learning_rate,
            cfg.optim.epochs,
            cfg.optim.max_steps,
            batching(cfg, backbone),
        ),
        max_length=cfg.optim.max_length,
        packing=False,
        train_sampling_strategy="group_by_length" if cfg.optim.group_by_length else "random",
    )
    return SFTTrainer(
        model=backbone.model,
        args=args,
        train_dataset=ds,
        processing_class=backbone.tokenizer,
        peft_config=peft_cfg,
        callbacks=callbacks,
    )


def train_sft(
    cfg, backbone, train: list[SFTExample], work: Path, device, callbacks: list | None = None
) -> list[dict]:
    trainer = sft_trainer(cfg, backbone, train, work, device, callbacks)
    trainer.train(resume_from_checkpoint=_last_checkpoint(work))
    return _finish(trainer, work)


def train_dpo(
    cfg,
    backbone,
    pairs: list[PreferencePair],
    work: Path,
    device,
    init_adapter: Path | None,
    callbacks: list | None = None,
) -> list[dict]:
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    rows = [
        {
            "prompt": list(p.messages),
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    ds = Dataset.from_list(rows)
    peft_cfg = None
    model = backbone.model
    if init_adapter is not None:  # continue the SFT adapter; reference = adapter disabled
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        peft_cfg = lora_config(cfg)
    args = DPOConfig(
        **_common_args(
            cfg,
            work,
            device,
            cfg.dpo.learning_rate,
            cfg.dpo.epochs,
            cfg.dpo.max_steps,
            batching(cfg, backbone, rows=2),
        ),
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        max_length=cfg.optim.max_length,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=ds,
        processing_class=backbone.tokenizer,
        peft_config=peft_cfg,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=_last_checkpoint(work))
    return _finish(trainer, work)
