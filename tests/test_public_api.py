"""The package's public face: `from trinityx import TrinityXModel, load_config, ...` works, gives
the very objects of the modules that define them, and `import trinityx` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trinityx


def test_public_names_are_the_defining_objects():
    from trinityx import ComposeConfig, TrinityXModel, compose, load_config
    from trinityx.config import ComposeConfig as C
    from trinityx.config import load_config as L
    from trinityx.model.composed import TrinityXModel as T
    from trinityx.stages.compose import run

    assert (TrinityXModel, load_config, ComposeConfig, compose) == (T, L, C, run)
    assert set(trinityx.__all__) == {"DIMENSIONS", "__version__", *trinityx._EXPORTS}
    for name in trinityx.__all__:
        assert getattr(trinityx, name) is not None, name
    assert set(trinityx.__all__) <= set(dir(trinityx))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'TrinityX'"):
        trinityx.TrinityX  # noqa: B018
    with pytest.raises(ImportError):
        from trinityx import TrinityX  # noqa: F401


def test_import_trinityx_does_not_load_torch():
    code = "import sys, trinityx; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out
