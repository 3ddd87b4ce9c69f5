"""A trained local judge as an object and as a folder: ``TrainedJudge`` and its judge.json schema.

Artifact = a folder with ``judge.json`` (kind, encoder, feature recipe, metrics, data files + sha256)
and ``head.safetensors`` (coef/intercept/classes, plus the TruthfulQA reference table when the
recipe uses one; for the ``pair_v2`` helpfulness judge the boosted trees, linear content head and
projection, see ``helpfulness``): no pickle, so loading a judge cannot run code. Saving is
atomic (``folder.write_artifact``: a temp folder beside the target, then a rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from trinityx.eval.judges.local.encoders import Encoder, encoder_from_name
from trinityx.eval.judges.local.features import RefTable, build_features
from trinityx.eval.judges.local.folder import read_artifact, write_artifact
from trinityx.eval.judges.local.helpfulness import HelpfulnessJudge


class TrainedJudge:
    """A fitted head plus the encoder and recipe that produce its features."""

    def __init__(
        self, meta: dict, clf: LogisticRegression, encoder: Encoder, refs: RefTable | None = None
    ) -> None:
        self.meta, self.clf, self.encoder, self.refs = meta, clf, encoder, refs
        self.kind: str = meta["kind"]

    def predict_proba(self, *columns: Sequence[str]) -> np.ndarray:
        """P(class 1) — see ``LABELS[kind]`` — for aligned text columns."""
        n = {len(c) for c in columns}
        if len(n) != 1:
            raise ValueError(f"{self.kind} judge: text columns differ in length {sorted(n)}")
        if n == {0}:
            return np.zeros(0)
        x = build_features(self.meta["feature_recipe"], self.encoder, columns, self.refs)
        return self.clf.predict_proba(x)[:, list(self.clf.classes_).index(1)]

    def save(self, out_dir: str | Path) -> Path:
        """Write judge.json + head.safetensors atomically (temp dir beside, then rename)."""
        arrays = {
            "coef": np.ascontiguousarray(self.clf.coef_, dtype=np.float64),
            "intercept": np.ascontiguousarray(self.clf.intercept_, dtype=np.float64),
            "classes": np.asarray(self.clf.classes_, dtype=np.int64),
            **(self.refs.arrays() if self.refs is not None else {}),
        }
        return write_artifact(out_dir, self.meta, arrays)

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None):  # noqa: ANN206
        """Rebuild the head from saved arrays; encoder from judge.json if not given.

        A ``pair_v2`` artifact (kind helpfulness) loads as a ``HelpfulnessJudge`` (boosted trees).
        """
        path = Path(path)
        meta, arrays = read_artifact(path)
        if meta["feature_recipe"] == "pair_v2":
            return HelpfulnessJudge.from_arrays(meta, arrays, _encoder(meta, encoder, path))
        clf = LogisticRegression()
        clf.coef_, clf.intercept_ = arrays["coef"], arrays["intercept"]
        clf.classes_ = arrays["classes"]
        clf.n_features_in_ = arrays["coef"].shape[1]
        refs = None
        if "ref_keys" in arrays:
            refs = RefTable(*(arrays[f"ref_{k}"] for k in ("keys", "vecs", "owner", "true")))
        return cls(meta, clf, _encoder(meta, encoder, path), refs)


def _encoder(meta: dict, encoder: Encoder | None, path: Path) -> Encoder:
    """The given encoder (checked against judge.json) or the one judge.json names."""
    enc = encoder if encoder is not None else encoder_from_name(meta["encoder"])
    if getattr(enc, "name", meta["encoder"]) != meta["encoder"]:
        raise ValueError(
            f"{path / 'judge.json'}: judge was trained with encoder {meta['encoder']!r} but got "
            f"{getattr(enc, 'name', '?')!r}; features would not match"
        )
    return enc
