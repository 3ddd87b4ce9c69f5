"""The truth / info judges (TruthfulQA GPT-judge / GPT-info stand-ins), held out by question.

Held-out metrics come from a fit that never saw the test questions; ``refit_all`` then refits on
every row for the saved head. ``judges.local.train.train_judge`` picks the trainer by kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trinityx.eval.judges.local.data import read_judge_finetune
from trinityx.eval.judges.local.encoders import Encoder
from trinityx.eval.judges.local.features import RefTable, build_features
from trinityx.eval.judges.local.fitting import (
    binary_metrics,
    fit_head,
    group_split,
    select_c,
    subsample,
)
from trinityx.eval.judges.local.folder import RECIPES, base_meta
from trinityx.eval.judges.local.trained import TrainedJudge
from trinityx.eval.tasks.truthfulqa import TRUTHFULQA_CSV, read_truthfulqa_gen


def train_qa(
    kind: str,
    data_dir: Path,
    enc: Encoder,
    max_rows: int | None,
    seed: int,
    c: float | None = None,
    test_frac: float = 0.2,
    refit_all: bool = True,
    use_references: bool | None = None,
) -> TrainedJudge:
    """truth / info: TruthfulQA GPT-judge fine-tuning rows, held out by question.

    ``use_references`` (default: on for truth, off for info, where it barely helps) adds the
    similarity of the answer to the question's TruthfulQA.csv reference answers (``RefTable``).
    """
    path = data_dir / f"truthfulqa/finetune_{kind}.jsonl"
    rows = read_judge_finetune(path)
    rows = [rows[i] for i in subsample(len(rows), max_rows, seed)]
    q, a = [r.question for r in rows], [r.answer for r in rows]
    y = np.array([r.label for r in rows])
    tr, te = group_split(q, test_frac, seed)
    if use_references is None:  # on for truth whenever the reference answers are there
        use_references = kind == "truth" and (data_dir / TRUTHFULQA_CSV).is_file()
    recipe, refs, files = RECIPES[kind], None, [path]
    if use_references:
        recipe, files = "qa_triplet_ref", [path, data_dir / TRUTHFULQA_CSV]
        refs = RefTable.build(read_truthfulqa_gen(data_dir, split="all"), enc)
    x = build_features(recipe, enc, (q, a), refs)
    c_search: dict[str, float] = {}
    if c is None:

        def score(cc: float, f: np.ndarray, v: np.ndarray) -> float:
            return (fit_head(x[f], y[f], cc, seed).predict(x[v]) == y[v]).mean()

        c, c_search = select_c(tr, q, seed, score)
    clf = fit_head(x[tr], y[tr], c, seed)
    metrics = binary_metrics(y[te], clf.predict_proba(x[te])[:, 1])
    metrics |= {"n_train": int(len(tr)), "n_test_questions": len({q[i] for i in te})}
    if refit_all:
        clf = fit_head(x, y, c, seed)
    meta = base_meta(
        kind,
        enc,
        files,
        data_dir,
        metrics=metrics,
        feature_recipe=recipe,
        split="by question",
        test_frac=test_frac,
        C=c,
        C_inner_accuracy=c_search,
        seed=seed,
        max_rows=max_rows,
        refit_all=refit_all,
        n_fit=int(len(y) if refit_all else len(tr)),
    )
    return TrainedJudge(meta, clf, enc, refs)
