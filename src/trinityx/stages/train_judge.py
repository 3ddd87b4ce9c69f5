"""Stage: train one local judge (truth, info, harm, pairwise or helpfulness) on the real data, on CPU.

A thin wrapper so the CLI and pipelines drive judge training from a config like every other stage;
the work lives in :func:`trinityx.eval.judges.local.train.train_judge`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trinityx.eval.config import TrainJudgeConfig
from trinityx.eval.judges.local.folder import KINDS
from trinityx.eval.judges.local.train import train_judge

log = logging.getLogger(__name__)


def run(cfg: TrainJudgeConfig) -> Path:
    """Train, validate on held-out groups and save the judge; returns the artifact folder."""
    if cfg.kind not in KINDS:
        raise ValueError(f"train_judge.kind={cfg.kind!r}: choose one of {', '.join(KINDS)}")
    options: dict = {"cache_dir": cfg.cache_dir} if cfg.cache_dir else {}
    if cfg.kind == "helpfulness":
        options["n_test_generators"] = cfg.n_test_generators
        options["train_generators"] = cfg.train_generators
        options["command"] = _command(cfg)
    out = train_judge(
        cfg.kind, cfg.data_dir, cfg.out_dir, max_rows=cfg.max_rows, seed=cfg.seed, **options
    )
    log.info("judge %s saved to %s", cfg.kind, out)
    return out


def _command(cfg: TrainJudgeConfig) -> str:
    """The CLI line that reproduces this run, quoted in the judge's report."""
    parts = [f"trinityx train-judge kind={cfg.kind} data_dir={cfg.data_dir} out_dir={cfg.out_dir}",
             f"seed={cfg.seed} n_test_generators={cfg.n_test_generators}"]  # fmt: skip
    if cfg.cache_dir:
        parts.append(f"cache_dir={cfg.cache_dir}")
    if cfg.max_rows:
        parts.append(f"max_rows={cfg.max_rows}")
    if cfg.train_generators:
        parts.append(f"'train_generators=[{','.join(cfg.train_generators)}]'")
    return " ".join(parts)
