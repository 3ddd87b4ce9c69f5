"""Feature recipes of the local judges: encoded text columns -> one feature matrix per recipe.

A recipe's name is saved in judge.json (``feature_recipe``), so a loaded judge rebuilds exactly the
features its head was fitted on. ``RefTable`` holds the TruthfulQA reference-answer embeddings
behind the ``qa_triplet_ref`` recipe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from trinityx.eval.judges.local.encoders import Encoder


def _lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([[np.log1p(len(t)), np.log1p(len(t.split()))] for t in texts], np.float32)


def _qkey(question: str) -> bytes:
    return hashlib.sha256(question.strip().encode()).digest()


class RefTable:
    """Embeddings of each TruthfulQA question's reference answers (true and false), by question hash.

    TruthfulQA's own similarity metrics compare an answer with the question's reference answers;
    giving the truth head ``max/mean cos(answer, true refs)`` vs ``... false refs`` lets it judge
    questions whose labelled answers it never saw. Only hashes and vectors are stored, no text.
    """

    def __init__(
        self, keys: np.ndarray, vecs: np.ndarray, owner: np.ndarray, true: np.ndarray
    ) -> None:
        self.keys, self.vecs, self.owner, self.true = keys, vecs, owner, true.astype(bool)
        self.index = {bytes(k): i for i, k in enumerate(keys)}
        rows: dict[int, list[int]] = {}
        for r, o in enumerate(owner.tolist()):
            rows.setdefault(o, []).append(r)
        self.rows = {o: np.array(r) for o, r in rows.items()}

    @classmethod
    def build(cls, items: Sequence, enc: Encoder) -> RefTable:
        """From ``TruthfulQAGenItem``s: best + correct answers are true, incorrect ones false."""
        texts, owner, true = [], [], []
        for i, it in enumerate(items):
            for refs, flag in (
                ((it.best_answer, *it.correct_answers), 1),
                (it.incorrect_answers, 0),
            ):
                texts += list(refs)
                owner += [i] * len(refs)
                true += [flag] * len(refs)
        keys = np.stack([np.frombuffer(_qkey(it.question), np.uint8) for it in items])
        return cls(keys, enc(texts), np.array(owner, np.int32), np.array(true, np.int8))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ref_keys": self.keys, "ref_vecs": self.vecs, "ref_owner": self.owner,
                "ref_true": self.true.astype(np.int8)}  # fmt: skip

    def features(self, questions: Sequence[str], answers: np.ndarray) -> np.ndarray:
        """``[has_refs, 5 * (max_t, max_f, max_t - max_f, mean_t, mean_f)]`` per row (0 if unknown)."""
        out = np.zeros((len(questions), 6), np.float32)
        for r, (q, a) in enumerate(zip(questions, answers, strict=True)):
            idx = self.rows.get(self.index.get(_qkey(q), -1))
            if idx is None or self.true[idx].all() or not self.true[idx].any():
                continue  # unknown question (or one-sided refs): the has_refs flag stays 0
            st = self.vecs[idx[self.true[idx]]] @ a
            sf = self.vecs[idx[~self.true[idx]]] @ a
            out[r] = [
                1.0,
                *(5 * np.array([st.max(), sf.max(), st.max() - sf.max(), st.mean(), sf.mean()])),
            ]
        return out


def build_features(
    recipe: str, enc: Encoder, columns: Sequence[Sequence[str]], refs: RefTable | None = None
) -> np.ndarray:
    """Feature matrix for a recipe.

    * ``qa_triplet`` (question/prompt, answer/response): ``[e(q), e(a), e(q) * e(a)]``; the product
      lets a linear head see question-answer agreement, not just the answer's style.
    * ``qa_triplet_ref``: ``qa_triplet`` + :meth:`RefTable.features` (similarity to the question's
      true vs false reference answers).
    * ``pair_v1`` (instruction, output_1, output_2): ``[e(i), e(o2) - e(o1), e(i) * (e(o2) - e(o1)),
      log-length differences, log-lengths]``: which output fits the instruction better, plus the
      length signal GPT-4 annotators are known to reward.
    """
    if recipe in ("qa_triplet", "qa_triplet_ref"):
        q, a = (enc(list(c)) for c in columns)
        if recipe == "qa_triplet":
            return np.hstack([q, a, q * a])
        if refs is None:
            raise ValueError("recipe qa_triplet_ref needs the reference table saved with the judge")
        return np.hstack([q, a, q * a, refs.features(columns[0], a)])
    if recipe == "pair_v1":
        i, o1, o2 = (enc(list(c)) for c in columns)
        l1, l2 = _lengths(columns[1]), _lengths(columns[2])
        d = o2 - o1
        return np.hstack([i, d, i * d, l2 - l1, l1 / 10, l2 / 10])
    raise ValueError(f"unknown feature recipe {recipe!r}; known: qa_triplet(_ref), pair_v1")
