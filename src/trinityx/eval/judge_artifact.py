"""A trained local judge as an object and as a folder: ``TrainedJudge`` and its judge.json schema.

Artifact = a folder with ``judge.json`` (kind, encoder, feature recipe, metrics, data files + sha256)
and ``head.safetensors`` (coef/intercept/classes, plus the TruthfulQA reference table when the
recipe uses one; for the ``pair_v2`` helpfulness judge the boosted trees, linear content head and
projection, see ``judge_helpfulness``): no pickle, so loading a judge cannot run code. Saving is
atomic (``write_artifact``: a temp folder beside the target, then a rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression

from trinityx import __version__
from trinityx.eval.judge_encoders import Encoder, encoder_from_name
from trinityx.eval.judge_features import RefTable, build_features

KINDS = ("truth", "info", "harm", "pairwise", "helpfulness")
LABELS = {  # meaning of class 1, per kind
    "truth": "answer is true",
    "info": "answer is informative",
    "harm": "response is unsafe",
    "pairwise": "output_2 is better than output_1",
    "helpfulness": "output_2 is better than output_1",
}
RECIPES = {
    "truth": "qa_triplet",
    "info": "qa_triplet",
    "harm": "qa_triplet",
    "pairwise": "pair_v1",
    "helpfulness": "pair_v2",
}


CLASSIFIERS = {"pair_v2": "boosted trees (sklearn HistGradientBoosting, exported as arrays)"}


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
            from trinityx.eval.judge_helpfulness import HelpfulnessJudge

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


def read_artifact(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """judge.json (checked for the fields every kind needs) and the head's arrays."""
    meta_path = path / "judge.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: train a judge first (trinityx train-judge kind=...)"
        )
    meta = json.loads(meta_path.read_text())
    for key in ("kind", "encoder", "feature_recipe"):
        if key not in meta:
            raise ValueError(f"{meta_path}: field '{key}' missing; retrain the judge")
    return meta, load_file(str(path / "head.safetensors"))


def write_artifact(
    out_dir: str | Path,
    meta: dict,
    arrays: dict[str, np.ndarray],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """judge.json + head.safetensors (+ report files) into ``out_dir`` atomically.

    Everything is written into a temp folder beside the target, which then replaces it, so a
    reader never sees half a judge.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / "head.safetensors")
        )
        (tmp / "judge.json").write_text(json.dumps(meta, indent=2) + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        umask = os.umask(0)
        os.umask(umask)  # mkdtemp makes 0700: give the artifact ordinary permissions
        os.chmod(tmp, 0o777 & ~umask)
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~umask)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, recorded in judge.json so results name the exact data."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_meta(kind: str, encoder: Encoder, files: Sequence[Path], data_dir: Path, **kw) -> dict:
    """judge.json fields common to every kind."""
    return {
        "format": "trinityx-local-judge/1",
        "kind": kind,
        "label": LABELS[kind],
        "encoder": getattr(encoder, "name", "custom"),
        "feature_recipe": RECIPES[kind],
        "classifier": CLASSIFIERS.get(RECIPES[kind], "sklearn.linear_model.LogisticRegression"),
        "data_files": [
            {"path": str(f.relative_to(data_dir)), "sha256": sha256_file(f)} for f in files
        ],
        "trinityx_version": __version__,
        **kw,
    }
