"""Shared fixtures: tiny random backbones with in-process tokenizers, cached per test session.

`tiny_backbone_cfg` is the tiny Llama; `family_cfg` runs a test once per backbone family (the
tiny Llama and the tiny Gemma 3 of model/tiny.py), for the paths that must not assume Llama.
"""

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
FAMILIES = ("tiny-random-llama", "tiny-random-gemma3")
# the user's backbone cache, read before `cache_dir` points TRINITYX_CACHE at a temporary folder
USER_CACHE = Path(os.environ.get("TRINITYX_CACHE", "~/.cache/trinityx")).expanduser()


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


@pytest.fixture(scope="session", params=FAMILIES, ids=["llama", "gemma3"])
def family_cfg(request, cache_dir):
    """The tiny backbone of each family in turn."""
    from trinityx.config import BackboneConfig

    return BackboneConfig(name=request.param, cache_dir=str(cache_dir), device="cpu")


@pytest.fixture()
def tiny_backbone(tiny_backbone_cfg):
    from trinityx.model.backbone import load_backbone

    return load_backbone(tiny_backbone_cfg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
