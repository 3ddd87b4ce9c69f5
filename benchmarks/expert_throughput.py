"""Expert-training throughput: TRL's SFTTrainer against a plain forward/backward loop.

Both train the same LoRA (the helpful expert's config) on the same starter examples, padded to the
longest row of each batch; the figure is *real* (non-pad) tokens per second, so padding and any
per-step overhead of the trainer (logging, metrics, callbacks, checkpoints) show up as a lower
rate. Run once, single-threaded, on a few batches:

    OMP_NUM_THREADS=1 python benchmarks/expert_throughput.py --batches 5
    OMP_NUM_THREADS=1 python benchmarks/expert_throughput.py --backbone tiny-random-llama  # smoke
    python benchmarks/expert_throughput.py --lengths-only  # token lengths of the starter rows

The length distribution decides `optim.max_length`: batches are padded to their longest row, so a
max_length above the longest row costs nothing and one below it only cuts responses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from trinityx.config import BackboneConfig, DataSource, TrainExpertConfig
from trinityx.data.formatting import collate, encode_sft
from trinityx.data.loading import load_sources
from trinityx.model.backbone import load_backbone
from trinityx.model.expert_trainers import lora_config


def _rows(cfg: TrainExpertConfig, tokenizer, n: int) -> list[dict]:
    records = load_sources(cfg, cfg.train, dimension=cfg.dimension)[:n]
    return [encode_sft(tokenizer, r, cfg.optim.max_length) for r in records]


def lengths(tokenizer) -> dict:
    """Templated prompt + response tokens per starter SFT row (harmless: prompt + chosen)."""
    import numpy as np

    out = {}
    for dim in ("helpful", "harmless", "honest"):
        src = DataSource(path=f"starter:{dim}", split="train")
        cfg = TrainExpertConfig(dimension=dim, output_dir="unused", train=[src])
        rows = [r.as_sft() if hasattr(r, "as_sft") else r for r in load_sources(cfg, [src])]
        n = np.array([len(encode_sft(tokenizer, r, 10_000)["input_ids"]) for r in rows])
        out[dim] = {
            "rows": len(n),
            "tokens": int(n.sum()),
            "median": float(np.median(n)),
            "p90": float(np.percentile(n, 90)),
            "max": int(n.max()),
        }
    return out


def plain_loop(cfg: TrainExpertConfig, rows: list[dict], bs: int) -> dict:
    """peft model + AdamW + forward/backward/step: the floor a trainer can reach."""
    from peft import get_peft_model

    bb = load_backbone(cfg.backbone, for_training=True)
    model = get_peft_model(bb.model, lora_config(cfg))
    model.train()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.optim.learning_rate
    )
    batches = [
        collate(rows[i : i + bs], bb.tokenizer.pad_token_id) for i in range(0, len(rows), bs)
    ]
    real = padded = 0
    t0 = time.perf_counter()
    for b in batches:
        out = model(**b)  # (B, T, V) logits inside; loss on the response tokens
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        real += int(b["attention_mask"].sum())
        padded += b["input_ids"].numel()
    dt = time.perf_counter() - t0
    return {
        "seconds": dt,
        "real_tokens": real,
        "padded_tokens": padded,
        "real_tokens_per_s": real / dt,
    }


def sft_trainer(cfg: TrainExpertConfig, rows: list[dict], bs: int, steps: int) -> dict:
    """The stage's trainer (TRL SFTTrainer, same arguments as train_expert) on the same rows."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trinityx.stages.train_expert import _common_args

    bb = load_backbone(cfg.backbone, for_training=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            **_common_args(cfg, Path(tmp), bb.model.device, cfg.optim.learning_rate, 1.0, steps),
            max_length=cfg.optim.max_length,
            packing=False,
        )
        args.save_strategy = "no"
        args.disable_tqdm = True
        trainer = SFTTrainer(
            model=bb.model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=bb.tokenizer,
            peft_config=lora_config(cfg),
        )
        t0 = time.perf_counter()
        trainer.train()
        dt = time.perf_counter() - t0
    real = sum(len(r["input_ids"]) for r in rows[: steps * bs])
    return {"seconds": dt, "real_tokens": real, "real_tokens_per_s": real / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct")
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lengths-only", action="store_true", help="only the token-length table")
    args = ap.parse_args()
    cfg = TrainExpertConfig(
        dimension="helpful",
        output_dir="unused",
        train=[DataSource(path="starter:helpful", split="train")],
        backbone=BackboneConfig(name=args.backbone),
    )
    cfg.optim.batch_size = args.batch_size
    bb = load_backbone(cfg.backbone)
    if args.lengths_only:
        print(json.dumps(lengths(bb.tokenizer), indent=2))
        return
    rows = _rows(cfg, bb.tokenizer, args.batches * args.batch_size)
    del bb
    res = {
        "threads": torch.get_num_threads(),
        "plain_loop": plain_loop(cfg, rows, args.batch_size),
        "sft_trainer": sft_trainer(cfg, rows, args.batch_size, args.batches),
    }
    res["trainer_over_plain"] = res["sft_trainer"]["seconds"] / res["plain_loop"]["seconds"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
