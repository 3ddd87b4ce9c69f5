"""The ``helpfulness`` judge (recipe ``pair_v2``): AlpacaEval-style preference from more than length.

Features of a pair (instruction ``i``, outputs ``o1``, ``o2``):

* surface counts of each output and their differences (``text_features``): length, lists,
  headers, code, repetition, refusals, truncation, overlap with the instruction;
* MiniLM geometry: ``cos(i, o1)``, ``cos(i, o2)``, their difference, ``cos(o1, o2)``;
* a learned *content score* per output, ``s(o) = w_a . e(o) + w_b . (e(i) * e(o))``: a linear
  Bradley-Terry head on the embeddings (fitted first, out-of-fold for the trees' training rows);
* ``proj @ e(o)`` for each output: a few principal directions of the answer embeddings (style
  and topic, which the trees may combine with length).

A boosted-tree head (scikit-learn ``HistGradientBoostingClassifier``, stored as arrays by
``TreeEnsemble``) maps these to P(o2 better). The judge is position-debiased: it scores both
orders and averages ``(p(i, o1, o2) + 1 - p(i, o2, o1)) / 2``, so swapping the outputs gives
exactly ``1 - p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trinityx.eval.judges.local.encoders import Encoder
from trinityx.eval.judges.local.folder import write_artifact
from trinityx.eval.judges.local.text_features import ANSWER_FEATURES, PAIR_EXTRA, surface_features
from trinityx.eval.judges.local.trees import TreeEnsemble

EMB_FEATURES = (
    "cos_i_o1",
    "cos_i_o2",
    "cos_diff",
    "cos_o1_o2",
    "score_o1",
    "score_o2",
    "score_diff",
)


def feature_names(n_proj: int) -> list[str]:
    """Column names of :func:`pair_v2_features` (saved in judge.json for the report)."""
    surf = [f"{side}_{f}" for side in ("o1", "o2", "diff") for f in ANSWER_FEATURES]
    proj = [f"pc{k}_{side}" for side in ("o1", "o2") for k in range(n_proj)]
    return [*surf, *PAIR_EXTRA, *EMB_FEATURES, *proj]


def content_scores(e_i: np.ndarray, e_o: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``s(o) = w[:d] . e(o) + w[d:] . (e(i) * e(o))`` per row; e_* (N, d), w (2d,) -> (N,)."""
    d = e_o.shape[1]
    return e_o @ w[:d] + (e_i * e_o) @ w[d:]


def pair_v2_features(
    surface: np.ndarray,
    e_i: np.ndarray,
    e_1: np.ndarray,
    e_2: np.ndarray,
    s_1: np.ndarray,
    s_2: np.ndarray,
    proj: np.ndarray,
) -> np.ndarray:
    """(N, 67 + 7 + 2k) features from surface counts, embeddings (N, d), scores (N,), proj (k, d)."""
    c1, c2 = (e_i * e_1).sum(1), (e_i * e_2).sum(1)  # embeddings are L2-normalised
    geo = np.stack([c1, c2, c2 - c1, (e_1 * e_2).sum(1), s_1, s_2, s_2 - s_1], axis=1)
    return np.hstack([surface, geo, e_1 @ proj.T, e_2 @ proj.T]).astype(np.float32)


class HelpfulnessJudge:
    """Encoder + linear content head + boosted trees; ``predict_proba`` = P(output_2 better)."""

    def __init__(
        self, meta: dict, trees: TreeEnsemble, lin_w: np.ndarray, proj: np.ndarray, encoder: Encoder
    ) -> None:
        self.meta, self.trees, self.encoder = meta, trees, encoder
        self.lin_w, self.proj = lin_w, proj  # (2d,), (k, d)
        self.kind: str = meta["kind"]

    def features(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features in the given order and with the outputs swapped: two (N, F) matrices."""
        e_i, e_1, e_2 = (self.encoder(list(c)) for c in (instructions, outputs_1, outputs_2))
        s_1, s_2 = content_scores(e_i, e_1, self.lin_w), content_scores(e_i, e_2, self.lin_w)
        fwd = pair_v2_features(
            surface_features(instructions, outputs_1, outputs_2), e_i, e_1, e_2, s_1, s_2, self.proj
        )
        rev = pair_v2_features(
            surface_features(instructions, outputs_2, outputs_1), e_i, e_2, e_1, s_2, s_1, self.proj
        )
        return fwd, rev

    def predict_proba(self, *columns: Sequence[str]) -> np.ndarray:
        """Position-debiased P(output_2 better) for aligned (instruction, output_1, output_2)."""
        if len(columns) != 3:
            raise ValueError(f"helpfulness judge: need 3 text columns, got {len(columns)}")
        n = {len(c) for c in columns}
        if len(n) != 1:
            raise ValueError(f"helpfulness judge: text columns differ in length {sorted(n)}")
        if n == {0}:
            return np.zeros(0)
        fwd, rev = self.features(*columns)
        return debiased(self.trees.predict_proba(fwd), self.trees.predict_proba(rev))

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.trees.arrays("tree_"), "lin_w": self.lin_w, "proj": self.proj}

    def save(self, out_dir: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
        """judge.json + head.safetensors (+ report files) atomically; no pickle anywhere."""
        return write_artifact(out_dir, self.meta, self.arrays(), extra_files)

    @classmethod
    def from_arrays(
        cls, meta: dict, arrays: dict[str, np.ndarray], encoder: Encoder
    ) -> HelpfulnessJudge:
        trees = TreeEnsemble({k[5:]: v for k, v in arrays.items() if k.startswith("tree_")})
        for key in ("lin_w", "proj"):
            if key not in arrays:
                raise ValueError(f"helpfulness judge: array {key!r} missing; retrain the judge")
        return cls(meta, trees, arrays["lin_w"], arrays["proj"], encoder)


def debiased(p_forward: np.ndarray, p_swapped: np.ndarray) -> np.ndarray:
    """Average of both orders: ``(p(o1, o2) + 1 - p(o2, o1)) / 2``."""
    return (np.asarray(p_forward) + 1.0 - np.asarray(p_swapped)) / 2.0
