"""Local, CPU-trainable judges: sentence embeddings + scikit-learn logistic-regression heads.

They stand in for GPT-judge / GPT-info (TruthfulQA), a harm classifier (BeaverTails) and the
AlpacaEval GPT-4 annotator when no API judge is configured, so every benchmark can run offline.
Each judge is validated on held-out *groups* (questions, prompts, instructions), never rows: the same
question with another answer must not leak into the test side, or accuracy would be inflated.

This module is the entry point (``train_judge``) and keeps the public names importable from one
place; the pieces live beside it:

* ``judge_encoders``: texts -> vectors (``HashingEncoder``, ``SentenceEncoder``, ``CachedEncoder``);
* ``judge_features``: feature recipes and the TruthfulQA reference table (``RefTable``);
* ``judge_artifact``: ``TrainedJudge`` and its judge.json + head.safetensors folder (no pickle);
* ``judge_fitting``: the shared classifier, group splits and the L2-strength search;
* ``judge_trainers``: one trainer per kind (truth, info, harm, pairwise);
* ``judge_helpfulness`` / ``judge_train_helpfulness`` / ``judge_text_features`` /
  ``judge_trees`` / ``judge_calibration``: the ``helpfulness`` judge (boosted trees over MiniLM and
  surface features, validated on held-out generators; the harness's default for alpaca_eval).

The encoder is injectable (any ``texts -> np.ndarray`` callable with a ``name``) so tests use a
cheap hashing encoder and never need the MiniLM wheel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trinityx.eval.judge_artifact import (
    KINDS,
    LABELS,
    RECIPES,
    TrainedJudge,
    base_meta,
    sha256_file,
)
from trinityx.eval.judge_encoders import (
    MINILM_NAME,
    CachedEncoder,
    Encoder,
    HashingEncoder,
    SentenceEncoder,
    encoder_from_name,
)
from trinityx.eval.judge_features import RefTable, build_features
from trinityx.eval.judge_fitting import C_GRID, fit_head
from trinityx.eval.judge_train_helpfulness import report_files, train_helpfulness
from trinityx.eval.judge_trainers import train_harm, train_pairwise, train_qa

__all__ = [
    "C_GRID",
    "KINDS",
    "LABELS",
    "MINILM_NAME",
    "RECIPES",
    "TRAINERS",
    "CachedEncoder",
    "Encoder",
    "HashingEncoder",
    "RefTable",
    "SentenceEncoder",
    "TrainedJudge",
    "base_meta",
    "build_features",
    "encoder_from_name",
    "fit_head",
    "sha256_file",
    "train_judge",
]

TRAINERS: dict[str, Callable[..., TrainedJudge]] = {
    "truth": lambda *a, **k: train_qa("truth", *a, **k),
    "info": lambda *a, **k: train_qa("info", *a, **k),
    "harm": train_harm,
    "pairwise": train_pairwise,
    "helpfulness": train_helpfulness,
}
# MiniLM tokens per text for the helpfulness judge: 21 texts/s on one free CPU thread (256 tokens:
# 9.6/s), i.e. ~30 min for the 38k distinct texts of its training data
HELPFULNESS_MAX_SEQ = 128


def train_judge(
    kind: str,
    data_dir: str | Path,
    out_dir: str | Path,
    encoder: Encoder | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    **options,
) -> Path:
    """Train one local judge, validate it on held-out groups, save the artifact; returns its folder.

    ``options`` go to the kind's trainer: ``c`` (inverse L2 strength; default: chosen from
    ``C_GRID`` on an inner group split of the training side), ``test_frac``,
    ``refit_all`` (after measuring held-out metrics, refit on every row, as the original
    GPT-judge was trained on all questions; held-out numbers always come from the split fit),
    ``use_hh_rlhf`` / ``hh_eval_rows`` (harm), ``n_test_generators`` / ``n_proj`` / ``gbm``
    (helpfulness), and ``cache_dir`` (on-disk embedding cache). The helpfulness judge also writes
    report.json, report.md and reliability.png into its folder (``command`` is quoted there).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown judge kind {kind!r}; choose one of {', '.join(KINDS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist: pass --data-dir")
    if encoder is None:
        short = kind == "helpfulness"
        encoder = (
            SentenceEncoder(max_seq_length=HELPFULNESS_MAX_SEQ) if short else SentenceEncoder()
        )
    cached = CachedEncoder(encoder, options.pop("cache_dir", None))
    command = options.pop("command", None)
    judge = TRAINERS[kind](data_dir, cached, max_rows, seed, **options)
    if kind == "helpfulness":
        command = command or (
            f"trinityx train-judge kind=helpfulness data_dir={data_dir} out_dir={out_dir} seed={seed}"
        )
        return judge.save(out_dir, extra_files=report_files(judge.meta, command))
    return judge.save(out_dir)
