"""Turn a config's `DataSource` list into records: path resolution, bundled `starter:` files, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trinityx.config import DataSource, resolve_path

STARTER_DIR = Path(__file__).parent / "starter"


def starter_path(name: str) -> Path:
    """`starter:harmless` -> the bundled file; an unknown name lists the available ones."""
    p = STARTER_DIR / f"{name}.jsonl"
    if not p.is_file():
        names = sorted(f.stem for f in STARTER_DIR.glob("*.jsonl"))
        raise FileNotFoundError(f"no bundled starter file {name!r}; available: {', '.join(names)}")
    return p


def resolve_source_path(cfg: Any, path: str) -> str | Path:
    """`starter:x` -> bundled file; else `config.resolve_path` (relative to the config file's
    folder when the file is there); a path that exists nowhere may be a hub dataset id."""
    if path.startswith("starter:"):
        return starter_path(path.split(":", 1)[1])
    resolved = resolve_path(cfg, str(Path(path).expanduser()) if path.startswith("~") else path)
    return Path(resolved) if Path(resolved).exists() else resolved


def load_sources(cfg: Any, sources: list[DataSource], *, kind: str | None = None,
                 dimension: str | None = None) -> list:
    """Read every source (records keep their own type unless `kind` converts them)."""
    from trinityx.data.readers import read_records

    out: list = []
    for src in sources:
        path = resolve_source_path(cfg, src.path)
        records = read_records(
            path,
            format=src.format,
            kind=kind,
            split=src.split,
            dimension=dimension,
            skip_bad_rows=src.skip_bad_rows,
            answers=src.answers,
        )
        records = list(records)
        if src.limit is not None:
            records = records[: src.limit]
        out.extend(records)
    return out
