"""Fitting and validation helpers shared by the local-judge trainers.

One classifier for every judge (L2 logistic regression), group-aware splits (a question, prompt or
instruction is never on both sides), the L2-strength search on an inner split of the training side,
and the held-out binary metrics written to judge.json.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit_head(x: np.ndarray, y: np.ndarray, c: float = 1.0, seed: int = 0) -> LogisticRegression:
    """The one classifier every local judge uses (L2 logistic regression, lbfgs)."""
    if len(set(y.tolist())) < 2:
        raise ValueError(f"training labels are all {y[0] if len(y) else '?'}: need both classes")
    return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)


def subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    """Sorted row indices: all ``n``, or a seeded random ``max_rows`` of them."""
    if max_rows is None or max_rows >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def group_split(groups: Sequence[str], test_frac: float, seed: int) -> tuple[np.ndarray, ...]:
    """Train/test row indices with every group (question, prompt, instruction) on one side only."""
    from sklearn.model_selection import GroupShuffleSplit

    gss = GroupShuffleSplit(n_splits=1, test_size=test_frac, random_state=seed)
    return next(gss.split(np.zeros(len(groups)), groups=groups))


C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def select_c(
    idx: np.ndarray, groups: Sequence[str], seed: int, score: Callable[..., float]
) -> tuple[float, dict[str, float]]:
    """Pick the L2 strength on an inner group split of the *training* side only.

    ``score(c, fit_idx, val_idx)`` returns validation accuracy; ties go to the smaller C (the
    simpler head). The outer held-out side never influences the choice.
    """
    inner_fit, inner_val = group_split([groups[i] for i in idx], 0.2, seed + 1)
    scores = {str(c): float(score(c, idx[inner_fit], idx[inner_val])) for c in C_GRID}
    return max(C_GRID, key=lambda c: (scores[str(c)], -c)), scores


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {
        "heldout_accuracy": float(((p >= 0.5) == y).mean()),
        "majority_baseline": float(max(y.mean(), 1 - y.mean())),
        "n_test": int(len(y)),
    }
    if len(set(y.tolist())) == 2:
        out["heldout_auc"] = float(roc_auc_score(y, p))
    return out
