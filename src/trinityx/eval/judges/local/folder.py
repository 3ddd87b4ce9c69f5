"""A local judge's folder: judge.json (what it judges, with which encoder and features, on which
data files) and head.safetensors (its arrays), read and written atomically, without pickle.

The folder format alone, apart from the judge classes that fill it (`trained`,
`helpfulness`), so both write through here and neither imports the other to save.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from trinityx import __version__
from trinityx.eval.judges.local.encoders import Encoder
from trinityx.model.artifacts import sha256_file

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
