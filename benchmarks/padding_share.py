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

for dim in ["helpful", "harmless", "honest"]:
    cfg = load_config(TrainExpertConfig, f"configs/smollm2/demo/{dim}.yaml", [])
    bb = load_backbone(cfg.backbone)
    rows = load_sources(cfg, cfg.train, dimension=dim)
    rows = [r.as_sft() if isinstance(r, PreferencePair) else r for r in rows]
    out = {}
    for g in (False, True):
        cfg.optim.group_by_length = g
        tr = expert_trainers.sft_trainer(
            cfg, bb, rows, Path(f"/tmp/padw{dim}{g}"), torch.device("cpu")
        )
        pad = tot = 0
        for seed in range(5):
            tr.args.data_seed = tr.args.seed = seed
            for b in tr.get_train_dataloader():
                pad += int((b["attention_mask"] == 0).sum())
                tot += b["attention_mask"].numel()
        out[g] = (pad / tot, tot / 5)
    print(
        dim,
        len(rows),
        "padding share random %.3f grouped %.3f; positions per epoch %.0f -> %.0f"
        % (out[False][0], out[True][0], out[False][1], out[True][1]),
    )
