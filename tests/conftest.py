"""Shared fixtures: a tiny random Llama with an in-process tokenizer, cached per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault(
    "OMP_NUM_THREADS", "1"
)  # tiny models: thread contention costs more than it gives
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A per-run backbone cache so tests never touch the user's ~/.cache/trinityx."""
    d = tmp_path_factory.mktemp("trinityx-cache")
    os.environ["TRINITYX_CACHE"] = str(d)
    return d


@pytest.fixture(scope="session")
def tiny_backbone_cfg(cache_dir):
    from trinityx.config import BackboneConfig

    return BackboneConfig(name="tiny-random-llama", cache_dir=str(cache_dir), device="cpu")


@pytest.fixture()
def tiny_backbone(tiny_backbone_cfg):
    from trinityx.model.backbone import load_backbone

    return load_backbone(tiny_backbone_cfg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
