"""Low-level file access shared by the benchmark and judge-data readers.

Locate a file under the data directory, load a JSON list or JSONL records, and read one required
string field; every failure raises naming the file, the line or item and the field.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path


def require_file(data_dir: str | Path, rel: str) -> Path:
    """``data_dir / rel``, or FileNotFoundError naming the folder to pass."""
    p = Path(data_dir) / rel
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: pass the data directory that holds {rel}")
    return p


def load_json_list(path: Path) -> list:
    """A JSON file holding a list; ValueError with the line of a syntax error otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, record)`` for each non-blank line of a .jsonl or .jsonl.gz file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def str_field(rec: dict, name: str, where: str, allow_empty: bool = False) -> str:
    """``rec[name]`` as a (non-empty unless ``allow_empty``) string; ``where`` prefixes errors."""
    v = rec.get(name)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        got = "missing" if name not in rec else f"{type(v).__name__} {str(v)[:40]!r}"
        raise ValueError(f"{where}: field '{name}' must be a non-empty string ({got})")
    return v
