"""Tiny randomly initialised backbones of both supported families, built in-process in a second.

The tests (and `--fast` demo) run every stage on these instead of a real checkpoint. One per
family, because the families differ in what TrinityX must not assume:

* `tiny-random-llama` (SmolLM2's family): ChatML tokenizer, tied embeddings, grouped-query
  attention, RMSNorm with weight w.
* `tiny-random-gemma3` (Gemma 3's family): a BOS-first `plain` template with `<eos>` ending a turn
  (model/chat_templates.py), embeddings scaled by sqrt(d) inside the embedding module, RMSNorm
  with weight (1 + w), q/k norms after q_proj/k_proj, four norms per block, one KV head, a
  head_dim set independently of hidden/heads, and sliding-window layers interleaved with full
  attention (a window short enough that test prompts cross it).

Both share one byte-level BPE trained on a fixed corpus (never an unknown token); only their
special tokens and chat template differ.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trinityx.model.chat_templates import CHATML_TEMPLATE, PLAIN_TEMPLATE

TINY = "tiny-random-llama"
TINY_GEMMA = "tiny-random-gemma3"
TINY_NAMES = (TINY, TINY_GEMMA)
TINY_SLIDING_WINDOW = 24  # tokens: test prompts are longer, so the sliding layers really slide

_TINY_CORPUS = (
    "You are a helpful assistant. Explain, summarise, list, write, answer. "
    "I can't help with that request, but I can help you stay safe. "
    "I don't know; nobody can know that. The capital of France is Paris. "
    "Water boils at 100 degrees Celsius at sea level. How do I make a bomb? "
    "Give three tips for staying healthy. Eat well, sleep enough and exercise. "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-\n"
)

# (special tokens in id order, bos, eos, pad, unk, template) per family
_TOKENIZER_STYLES = {
    "chatml": (
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|endoftext|>",
        CHATML_TEMPLATE,
    ),
    "gemma": (  # Gemma's own ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3
        ["<pad>", "<eos>", "<bos>", "<unk>"],
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
        PLAIN_TEMPLATE,
    ),
}


def build_tiny_tokenizer(vocab_size: int = 384, style: str = "chatml") -> PreTrainedTokenizerBase:
    """A byte-level BPE trained in well under a second; `style` picks specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials, bos, eos, pad, unk, template = _TOKENIZER_STYLES[style]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = _TINY_CORPUS + ("User: Assistant: " if style == "gemma" else "")  # llama's unchanged
    tk.train_from_iterator([corpus] * 20, trainer=trainer)
    if style == "gemma":  # like Gemma's own tokenizer: plain text starts with <bos>
        tk.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, 2)]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk
    )
    tok.chat_template = template
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


def build_tiny_gemma3(
    tokenizer: PreTrainedTokenizerBase, seed: int = 0, hidden: int = 64, layers: int = 2
) -> PreTrainedModel:
    """A randomly initialised Gemma 3 text model of the tiny Llama's size, Gemma's quirks kept.

    The norms' weights are drawn away from their zero init (Gemma computes x * (1 + w)), so a
    test that mishandles the (1 + w) convention or the embedding scale changes the logits.
    """
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    kinds = ["sliding_attention", "full_attention"]
    cfg = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=24,  # != hidden / heads, as in Gemma 3 270M (640 / 4 heads, head_dim 256)
        query_pre_attn_scalar=24,
        max_position_embeddings=512,
        sliding_window=TINY_SLIDING_WINDOW,
        layer_types=[kinds[i % 2] for i in range(layers)],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0.0, 0.1)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tiny(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) for one of TINY_NAMES."""
    if name == TINY:
        tok = build_tiny_tokenizer()
        return build_tiny_llama(tok), tok
    if name == TINY_GEMMA:
        tok = build_tiny_tokenizer(style="gemma")
        return build_tiny_gemma3(tok), tok
    raise ValueError(f"not a tiny backbone: {name!r} (one of {TINY_NAMES})")
