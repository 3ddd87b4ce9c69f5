"""Train one local judge by kind: the entry point behind ``trinityx train-judge``.

It picks the kind's trainer, wraps the encoder in an embedding cache, and saves the artifact
(with the helpfulness judge's report files) atomically; see ``trinityx.eval.judges.local``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trinityx.eval.judges.local.encoders import CachedEncoder, Encoder, SentenceEncoder
from trinityx.eval.judges.local.folder import KINDS
from trinityx.eval.judges.local.train_harm import train_harm
from trinityx.eval.judges.local.train_helpfulness import report_files, train_helpfulness
from trinityx.eval.judges.local.train_pairwise import train_pairwise
from trinityx.eval.judges.local.train_qa import train_qa
from trinityx.eval.judges.local.trained import TrainedJudge

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
