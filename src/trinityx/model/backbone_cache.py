"""The backbone cache: folders of plain safetensors that built-in backbone names resolve to.

Built-in names (the embedded GGUF models, the tiny random ones) are built or converted once and
kept as ordinary Hugging Face folders, so every later load is a plain `from_pretrained`. Each
folder carries `trinityx_backbone.json`: the name, the weights' sha256 (computed once, since
hashing a 270M-parameter model takes seconds) and which chat template the folder's tokenizer
holds, so artifacts can say which backbone and which prompt format they were built with.
Shared by model/backbone.py, model/embedded.py and the tiny builders' caller.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trinityx.config import BackboneConfig
from trinityx.model.artifacts import atomic_dir

META = "trinityx_backbone.json"


class BackboneError(RuntimeError):
    """A backbone could not be loaded; the message says why and what to do."""


def cache_root(cfg: BackboneConfig | None = None) -> Path:
    """`cfg.cache_dir`, else `$TRINITYX_CACHE`, else ~/.cache/trinityx."""
    if cfg is not None and cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    return Path(os.environ.get("TRINITYX_CACHE", "~/.cache/trinityx")).expanduser()


def state_dict_hash(model: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes (dtype-independent: hashed as fp32)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def read_meta(folder: str | Path) -> dict | None:
    """The folder's trinityx_backbone.json, or None for a folder TrinityX did not write."""
    path = Path(folder) / META
    return json.loads(path.read_text()) if path.is_file() else None


def write_backbone_folder(
    dest: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **meta: object
) -> None:
    """Save model (safetensors) + tokenizer + META with the weights hash, atomically."""
    weights_hash = state_dict_hash(model)
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / META).write_text(json.dumps({**meta, "weights_hash": weights_hash}))
