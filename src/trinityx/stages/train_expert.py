"""Stage `train-expert`: one PEFT LoRA expert for one HHH dimension, by SFT and/or DPO through TRL.

setup (backbone, data, held-out split) -> train (SFT, then DPO if asked; each phase checkpoints
into `<output_dir>.partial/` and resumes from there) -> save (a plain PEFT adapter, the resolved
config, metrics, a loss curve and a manifest, renamed into place atomically).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from transformers import set_seed

from trinityx import DIMENSIONS
from trinityx.config import TrainExpertConfig, dump_yaml
from trinityx.data.loading import load_sources
from trinityx.data.records import PreferencePair, SFTExample
from trinityx.model.artifacts import (
    ArtifactError,
    atomic_dir,
    sha256_file,
    write_json,
    write_manifest,
)
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.model.expert_trainers import (
    batching,
    is_main_process,
    train_dpo,
    train_sft,
)
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
    # dpo: every row a pair; sft+dpo: pairs (SFT on the chosen answer, then DPO) may be mixed
    # with plain SFT rows (e.g. benign instructions answered, so refusals are not all it learns)
    kind = "preference" if cfg.method == "dpo" else None
    records = load_sources(cfg, cfg.train, kind=kind, dimension=_label(cfg))
    pairs = [r for r in records if isinstance(r, PreferencePair)]
    if cfg.method in ("dpo", "sft+dpo") and not pairs:
        raise ValueError(f"method={cfg.method} needs preference data (prompt/chosen/rejected)")
    train, heldout = _split_heldout(cfg, records)
    heldout_sft = _as_sft(heldout)
    work = out.with_name(out.name + ".partial")
    main = is_main_process()
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
            history["sft"] = train_sft(cfg, backbone, _as_sft(train), sft_dir, device, callbacks)
            (sft_dir / "history.json").write_text(json.dumps(history["sft"]))
        else:
            history["sft"] = json.loads((sft_dir / "history.json").read_text())
        adapter = sft_dir / "final"
    if cfg.method in ("dpo", "sft+dpo"):
        dpo_dir = work / "dpo"
        train_pairs = [r for r in train if isinstance(r, PreferencePair)]
        backbone = backbone_loader(cfg.backbone, for_training=True)  # fresh, un-wrapped base
        history["dpo"] = train_dpo(cfg, backbone, train_pairs, dpo_dir, device, adapter, callbacks)
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
