"""Artifact folders: atomic writes, manifests, file hashes, and load-time checks with clear errors.

Every stage writes one folder. It is built in a temporary sibling and renamed into place only when
complete, so a crash never leaves a half-written artifact that a later stage would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact folder is missing, incomplete or of the wrong kind; the message says the fix."""


@contextlib.contextmanager
def atomic_dir(dest: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp folder beside `dest`; on success rename it to `dest` (replacing an old one)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise ArtifactError(f"{dest} already exists; pass overwrite=true or choose another folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file via temp + rename so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_manifest(folder: Path, kind: str, **fields: Any) -> dict:
    """The manifest says what the artifact is and what it was built from."""
    from trinityx import __version__

    manifest = {"kind": kind, "trinityx_version": __version__, "created": time.time(), **fields}
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path, kind: str | None = None) -> dict:
    """Read and check a manifest; errors name the folder and the command that makes it."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ArtifactError(f"artifact folder not found: {folder}")
    if not path.is_file():
        partial = folder.with_name(folder.name + ".partial")
        hint = (
            f" (an interrupted run left {partial}; rerun the same command to resume)"
            if (partial.exists())
            else ""
        )
        raise ArtifactError(f"{folder} has no {MANIFEST}: not a TrinityX artifact{hint}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(
            f"{path}: invalid JSON ({e}); the artifact is damaged, rebuild it"
        ) from e
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{folder} is a {manifest.get('kind')!r} artifact, expected {kind!r}")
    return manifest
