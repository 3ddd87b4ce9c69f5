"""Turn a config's `DataSource` list into records: path resolution, bundled `starter:` files, limits."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from trinityx.config import DataSource, resolve_path

log = logging.getLogger(__name__)

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


def normalise_prompt(text: str) -> str:
    """Case and whitespace folded: how prompts are compared for exclusion."""
    return " ".join(text.lower().split())


@functools.lru_cache(maxsize=4)
def _read_excluded(path: str) -> frozenset[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"exclude_prompts: {p} not found (a JSON-lines file of prompt strings)"
        )
    out = set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            v = json.loads(line)
            if not isinstance(v, str):
                raise ValueError(f"{p}:{n}: expected a JSON string (one prompt per line)")
            out.add(normalise_prompt(v))
    return frozenset(out)


def excluded_prompts(cfg: Any) -> frozenset[str]:
    """The config's `exclude_prompts` file as a set (empty when the config has none)."""
    path = getattr(cfg, "exclude_prompts", None)
    return _read_excluded(resolve_path(cfg, path)) if path else frozenset()


def _user_turns(record: Any) -> set[str]:
    return {normalise_prompt(m["content"]) for m in record.messages if m["role"] == "user"}


def load_sources(
    cfg: Any, sources: list[DataSource], *, kind: str | None = None, dimension: str | None = None
) -> list:
    """Read every source (records keep their own type unless `kind` converts them)."""
    from trinityx.data.readers import read_records

    out: list = []
    excluded = excluded_prompts(cfg)
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
        if excluded:
            kept = [r for r in records if not _user_turns(r) & excluded]
            if len(kept) < len(records):
                log.info(
                    "%s: %d record(s) dropped, their prompt is in exclude_prompts",
                    src.path,
                    len(records) - len(kept),
                )
            records = kept
        if src.limit is not None:
            records = records[: src.limit]
        out.extend(records)
    return out
