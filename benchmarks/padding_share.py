"""Padding share of the demo experts' SFT batches, random vs length-grouped (optim.group_by_length).

Builds the same TRL trainer the stage builds and counts padded positions over one epoch of its
dataloader for five seeds; no training.  python benchmarks/padding_share.py
"""

from pathlib import Path

import torch

from trinityx.config import TrainExpertConfig, load_config
from trinityx.data.loading import load_sources
from trinityx.data.records import PreferencePair
from trinityx.model import expert_trainers
from trinityx.model.backbone import load_backbone


def padding(trainer, seeds: int = 5) -> tuple[float, float]:
    """(share of padded positions, positions per epoch) over `seeds` shuffles."""
    pad = total = 0
    for seed in range(seeds):
        trainer.args.data_seed = trainer.args.seed = seed
        for batch in trainer.get_train_dataloader():
            mask = batch["attention_mask"]
            pad += int((mask == 0).sum())
            total += mask.numel()
    return pad / total, total / seeds


def main() -> None:
    for dim in ("helpful", "harmless", "honest"):
        cfg = load_config(TrainExpertConfig, f"configs/smollm2/demo/{dim}.yaml", [])
        backbone = load_backbone(cfg.backbone)
        rows = load_sources(cfg, cfg.train, dimension=dim)
        rows = [r.as_sft() if isinstance(r, PreferencePair) else r for r in rows]
        out = {}
        for grouped in (False, True):
            cfg.optim.group_by_length = grouped
            work = Path(f"/tmp/padding_share/{dim}-{grouped}")
            out[grouped] = padding(
                expert_trainers.sft_trainer(cfg, backbone, rows, work, torch.device("cpu"))
            )
        print(
            f"{dim} ({len(rows)} rows): padding share random {out[False][0]:.3f}, grouped "
            f"{out[True][0]:.3f}; positions per epoch {out[False][1]:.0f} -> {out[True][1]:.0f}"
        )


if __name__ == "__main__":
    main()
