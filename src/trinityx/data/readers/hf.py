"""Read a Hugging Face dataset id into records, with a clear error when the Hub is out of reach.

`datasets` is imported lazily: it is slow to import and only this path needs it. Rows go through
the same row parsers as local files (`readers.formats.records_from_rows`), so a Hub copy of
BeaverTails or hh-rlhf gives exactly the records its local file would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

from trinityx.data.readers.base import KINDS, DataError, ReadReport, Record, RowSink
from trinityx.data.readers.formats import ROW_FORMATS, detect_row_format, records_from_rows

_TRUE = {"1", "ON", "YES", "TRUE"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class HubUnavailableError(ConnectionError):
    """A Hugging Face dataset id could not be loaded: no network (or offline mode) and no cache."""


@contextmanager
def _offline_env_honoured() -> Iterator[None]:
    """Apply HF_HUB_OFFLINE as it is now, not as it was when the hub libraries were imported.

    `huggingface_hub` and `datasets` read the variable once at import; without this, a caller who
    sets it later (a notebook, a test) still waits ~25 s for the library's network retries.
    """
    if not any(os.environ.get(v, "").upper() in _TRUE for v in _OFFLINE_VARS):
        yield
        return
    import datasets.config as dc
    import huggingface_hub.constants as hc

    saved = (hc.HF_HUB_OFFLINE, dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE)
    hc.HF_HUB_OFFLINE = dc.HF_HUB_OFFLINE = dc.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE, dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE = saved


def load_hf_dataset(dataset_id: str, split: str, name: str | None = None) -> Any:
    """`datasets.load_dataset(...)`, turning hub/network failures into one actionable error."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with _offline_env_honoured():
            return datasets.load_dataset(dataset_id, name, split=split)
    except DatasetNotFoundError as e:
        raise FileNotFoundError(
            f"Hugging Face dataset {dataset_id!r} was not found on the Hub or in the local cache "
            f"({e}); check the id, or pass a local file path instead"
        ) from e
    except (ConnectionError, TimeoutError, HfHubHTTPError) as e:
        raise HubUnavailableError(
            f"could not load Hugging Face dataset {dataset_id!r} (split {split!r}) offline: the Hub "
            f"is unreachable or HF_HUB_OFFLINE is set, and the dataset is not in the local cache "
            f"({type(e).__name__}). Download it once on a connected machine (it is then cached), or "
            f"pass a local file path instead, e.g. read_records('data/{dataset_id.split('/')[-1]}"
            ".jsonl') with rows in the generic JSONL schema of trinityx.data.readers"
        ) from e


def read_hf(
    dataset_id: str,
    split: str = "train",
    kind: str | None = "sft",
    field_map: dict[str, str] | None = None,
    *,
    name: str | None = None,
    format: str | None = None,
    dimension: str | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> list[Record]:
    """Records of `kind` from a Hugging Face dataset split.

    `field_map` maps schema keys to dataset columns, e.g. {"prompt": "question", "response":
    "best_answer"}, so any dataset can be read through the generic JSONL schema; `format` forces a
    row format (alpaca, beavertails_pairs, beavertails_qa, hh_rlhf, jsonl), otherwise the first row
    decides. `name` is the dataset's configuration (e.g. "generation" for truthful_qa).
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)} (or None: as read)")
    if format is not None and format not in ROW_FORMATS:
        raise ValueError(f"format={format!r} is not one of {', '.join(ROW_FORMATS)}")
    ds = load_hf_dataset(dataset_id, split, name)
    source = f"hf:{dataset_id}[{split}]"
    field_map = dict(field_map or {})
    missing = [c for c in field_map.values() if c not in ds.column_names]
    if missing:
        raise DataError(
            f"{source}: field_map names column(s) {', '.join(map(repr, missing))} that "
            f"the dataset lacks; its columns are {', '.join(ds.column_names)}"
        )
    sink = RowSink(source, skip_bad_rows, report)

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, row in enumerate(ds, start=1):
            sink.rows += 1
            for key, column in field_map.items():
                row[key] = row[column]
            yield f"{source}:row {i}", row

    it = rows()
    first = next(it, None)
    if first is None:
        return sink.finish([])
    fmt = format or detect_row_format(first[1])
    records = records_from_rows(chain([first], it), fmt, kind=kind, sink=sink, dimension=dimension)
    return sink.finish(records)
