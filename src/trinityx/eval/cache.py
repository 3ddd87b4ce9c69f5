"""On-disk cache of model outputs (generations and log-likelihoods), one JSONL file per model.

Evaluation on CPU takes hours, so no output is computed twice: every answer is appended to
`<cache_dir>/<fingerprint[:24]>.jsonl` under key = sha256(fingerprint, request, settings) and
flushed after each batch. On start the file is read back, so a rerun or an interrupted run
continues where it stopped. Append-only JSON lines survive a crash mid-write: a torn last line is
skipped (and recomputed), never trusted. The model fingerprint is part of every key, so a cache
file can never serve outputs of another model even if files are renamed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)


def request_key(fingerprint: str, request: Any, settings: dict) -> str:
    """sha256 over the canonical JSON of (fingerprint, request, settings)."""
    blob = json.dumps([fingerprint, request, settings], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache:
    """key -> JSON value (a generated text or a log-likelihood) for one model fingerprint.

    `folder=None` keeps everything in memory (tests, throwaway runs).
    """

    def __init__(self, folder: str | Path | None, fingerprint: str, model_name: str = "") -> None:
        self.fingerprint = fingerprint
        self.entries: dict[str, Any] = {}
        self.path = None if folder is None else Path(folder) / f"{fingerprint[:24]}.jsonl"
        self.skipped = 0
        if self.path is not None and self.path.is_file():
            self._load()
        elif self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append([{"meta": {"fingerprint": fingerprint, "model": model_name}}])

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.skipped += 1  # a torn line from an interrupted write
                    continue
                if "meta" in rec:
                    if rec["meta"].get("fingerprint") != self.fingerprint:
                        raise ValueError(
                            f"{self.path}:{n}: cache file belongs to fingerprint "
                            f"{rec['meta'].get('fingerprint')!r}, not {self.fingerprint!r}; "
                            "delete the file or point cache_dir elsewhere"
                        )
                    continue
                self.entries[rec["key"]] = rec["value"]
        if self.skipped:
            log.warning(
                "%s: skipped %d unreadable line(s); they will be recomputed",
                self.path,
                self.skipped,
            )
        log.info("generation cache %s: %d entries", self.path, len(self.entries))

    def _append(self, records: list[dict]) -> None:
        if self.path is None:
            return
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as f:
            if f.tell() > 0 and not self._ends_with_newline():
                f.write("\n")  # never glue a new record onto a torn line
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def key(self, request: Any, settings: dict) -> str:
        return request_key(self.fingerprint, request, settings)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def __len__(self) -> int:
        return len(self.entries)

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store (key, value) pairs and flush them to disk in one append (one call per batch)."""
        items = list(items)
        self.entries.update(items)
        self._append([{"key": k, "value": v} for k, v in items])

    def map(
        self,
        requests: list,
        settings: dict,
        call: Callable[[list], list],
        chunk: int,
        desc: str,
        order: Callable[[Any], Any] | None = None,
    ) -> tuple[list, int]:
        """Outputs for `requests` -> (outputs in order, number computed now).

        Misses (deduplicated) are computed by `call` in chunks of `chunk`, in `order` (a sort
        key on a request; default longest first so similar lengths share a batch), and each
        chunk is flushed to disk before the next.
        """
        keys = [self.key(r, settings) for r in requests]
        todo = list({k: r for k, r in zip(keys, requests, strict=True) if k not in self}.items())
        todo.sort(key=lambda kr: order(kr[1]) if order else -len(json.dumps(kr[1])))
        starts = range(0, len(todo), chunk)
        for s in tqdm(starts, desc=desc, disable=not todo):
            part = todo[s : s + chunk]
            outs = call([r for _, r in part])
            self.put_many(zip([k for k, _ in part], outs, strict=True))
        return [self[k] for k in keys], len(todo)
