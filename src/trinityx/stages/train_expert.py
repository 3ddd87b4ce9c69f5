"""Stage `train-expert`: one PEFT LoRA expert for one HHH dimension, by SFT and/or DPO through TRL.

setup (backbone, data, held-out split) -> train (SFT, then DPO if asked; each phase checkpoints
into `<output_dir>.partial/` and resumes from there) -> save (a plain PEFT adapter, the resolved
config, metrics, a loss curve and a manifest, renamed into place atomically).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import set_seed

from trinityx import DIMENSIONS
from trinityx.config import TrainExpertConfig, dump_yaml
from trinityx.data.formatting import encode_sft
from trinityx.data.loading import load_sources
from trinityx.data.records import PreferencePair, SFTExample
from trinityx.model.artifacts import (
    ArtifactError,
    atomic_dir,
    sha256_file,
    write_json,
    write_manifest,
)
from trinityx.model.backbone import Backbone, bf16_autocast_supported, load_backbone
from trinityx.model.lm_head import accumulation_split
from trinityx.model.scoring import generate_greedy, masked_lm_loss
from trinityx.model.targets import check_target_modules

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"  # inside the artifact: a standard PEFT adapter folder


def _split_heldout(cfg: TrainExpertConfig, records: list) -> tuple[list, list]:
    heldout = load_sources(cfg, cfg.heldout, dimension=_label(cfg)) if cfg.heldout else []
    if heldout or cfg.heldout_fraction == 0:
        return records, heldout
    rng = random.Random(cfg.seed)
    idx = list(range(len(records)))
    rng.shuffle(idx)
    n = max(1, int(round(len(records) * cfg.heldout_fraction)))
    held = set(idx[:n])
    return [r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)]


def _label(cfg: TrainExpertConfig) -> str | None:
    """Readers label rows with HHH dimensions only; a free-form expert (e.g. `multitask`) keeps
    each source's own labels."""
    return cfg.dimension if cfg.dimension in DIMENSIONS else None


def _as_sft(records: list) -> list[SFTExample]:
    return [r.as_sft() if isinstance(r, PreferencePair) else r for r in records]


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


def _is_main_process() -> bool:
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


def _lora_config(cfg):
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
    peft_cfg = _lora_config(cfg)
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


def _train_sft(
    cfg, backbone, train: list[SFTExample], work: Path, device, callbacks: list | None = None
) -> list[dict]:
    trainer = sft_trainer(cfg, backbone, train, work, device, callbacks)
    trainer.train(resume_from_checkpoint=_last_checkpoint(work))
    return _finish(trainer, work)


def _train_dpo(
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
        peft_cfg = _lora_config(cfg)
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


def _loss_plot(history: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for phase, logs in history.items():
        pts = [(h["step"], h["loss"]) for h in logs if "loss" in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=".", label=f"{phase} train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    cfg: TrainExpertConfig,
    callbacks: list | None = None,
    backbone_loader: Callable[..., Backbone] = load_backbone,
) -> Path:
    """Train the expert and write its artifact folder; returns the folder.

    `callbacks`: extra transformers `TrainerCallback`s (logging, early stopping, ...). Rerunning
    after an interruption resumes from the last checkpoint in `<output_dir>.partial/`.
    Data parallel under `accelerate launch` / torchrun (DDP): the global batch is
    batch_size x grad_accum x processes; rank 0 alone measures, saves and writes the artifact.
    `backbone_loader(cfg, for_training=...)` replaces `load_backbone`, e.g. a cache that loads
    once and hands out copies when several stages run in one process (the demo).
    """
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise ArtifactError(
            f"{out} already exists; set overwrite=true or choose another output_dir"
        )
    set_seed(cfg.seed)
    backbone = backbone_loader(cfg.backbone, for_training=True)
    check_target_modules(backbone.model, cfg.lora.target_modules)  # before any data or training
    device = backbone.model.device
    kind = "preference" if cfg.method in ("dpo", "sft+dpo") else None
    records = load_sources(cfg, cfg.train, kind=kind, dimension=_label(cfg))
    pairs = [r for r in records if isinstance(r, PreferencePair)]
    if cfg.method in ("dpo", "sft+dpo") and not pairs:
        raise ValueError(f"method={cfg.method} needs preference data (prompt/chosen/rejected)")
    train, heldout = _split_heldout(cfg, records)
    heldout_sft = _as_sft(heldout)
    work = out.with_name(out.name + ".partial")
    main = _is_main_process()
    work.mkdir(parents=True, exist_ok=True)
    samples = [ex.messages for ex in heldout_sft[:2]]
    samples += [({"role": "user", "content": p},) for p in cfg.sample_prompts]
    before = {}
    if main:  # the other ranks wait for it in the trainer's first collective
        (work / "config.yaml").write_text(dump_yaml(cfg))
        before = {
            "heldout_loss": masked_lm_loss(
                backbone.model,
                backbone.tokenizer,
                heldout_sft,
                logits_budget_mb=backbone.logits_budget_mb,
            )
            if heldout_sft
            else None,
            "answers": generate_greedy(
                backbone.model, backbone.tokenizer, samples, cfg.max_new_tokens
            ),
        }

    history: dict[str, list[dict]] = {}
    adapter: Path | None = None
    if cfg.method in ("sft", "sft+dpo"):
        sft_dir = work / "sft"
        if not (sft_dir / "final" / "adapter_config.json").is_file():
            history["sft"] = _train_sft(cfg, backbone, _as_sft(train), sft_dir, device, callbacks)
            (sft_dir / "history.json").write_text(json.dumps(history["sft"]))
        else:
            history["sft"] = json.loads((sft_dir / "history.json").read_text())
        adapter = sft_dir / "final"
    if cfg.method in ("dpo", "sft+dpo"):
        dpo_dir = work / "dpo"
        train_pairs = [r for r in train if isinstance(r, PreferencePair)]
        backbone = backbone_loader(cfg.backbone, for_training=True)  # fresh, un-wrapped base
        history["dpo"] = _train_dpo(cfg, backbone, train_pairs, dpo_dir, device, adapter, callbacks)
        adapter = dpo_dir / "final"
    if not main:
        return out  # rank 0 writes the artifact

    from peft import PeftModel

    base = backbone_loader(cfg.backbone)
    tuned = PeftModel.from_pretrained(base.model, str(adapter)).eval()
    after = {
        "heldout_loss": masked_lm_loss(
            tuned, base.tokenizer, heldout_sft, logits_budget_mb=base.logits_budget_mb
        )
        if heldout_sft
        else None,
        "answers": generate_greedy(tuned, base.tokenizer, samples, cfg.max_new_tokens),
    }
    metrics = {
        "dimension": cfg.dimension,
        "method": cfg.method,
        "n_train": len(train),
        "n_heldout": len(heldout_sft),
        "micro_batch": list(batching(cfg, base)),  # (per-device rows, accumulation steps) of SFT
        "heldout_loss_before": before["heldout_loss"],
        "heldout_loss_after": after["heldout_loss"],
        "probe_logits": json.loads((adapter / "probe.json").read_text()),
        "final_train_loss": {
            k: next((h["loss"] for h in reversed(v) if "loss" in h), None)
            for k, v in history.items()
        },
        "samples": [
            {"prompt": s[-1]["content"], "before": b, "after": a}
            for s, b, a in zip(samples, before["answers"], after["answers"], strict=True)
        ],
    }
    data_files = sorted({src.path for src in [*cfg.train, *cfg.heldout]})
    with atomic_dir(out) as tmp:
        shutil.copytree(adapter, tmp / ADAPTER_DIR, ignore=shutil.ignore_patterns("probe.json"))
        (tmp / "config.yaml").write_text(dump_yaml(cfg))
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "history.json", history)
        _loss_plot(history, tmp / "loss_curve.png")
        write_manifest(
            tmp,
            "expert",
            dimension=cfg.dimension,
            backbone=cfg.backbone.name,
            backbone_source=base.source,
            backbone_weights_hash=base.weights_hash,
            chat_template=base.chat_template,
            method=cfg.method,
            lora={
                "r": cfg.lora.r,
                "alpha": cfg.lora.alpha,
                "target_modules": list(cfg.lora.target_modules),
            },
            data={
                p: (sha256_file(p) if Path(p).is_file() else None)
                for p in (_resolved(cfg, p) for p in data_files)
            },
        )
    shutil.rmtree(work, ignore_errors=True)
    log.info("expert %s written to %s", cfg.dimension, out)
    return out


def _resolved(cfg: TrainExpertConfig, path: str) -> str:
    from trinityx.data.loading import resolve_source_path

    return str(resolve_source_path(cfg, path))
