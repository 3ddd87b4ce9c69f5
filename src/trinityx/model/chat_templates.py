"""The chat templates TrinityX supplies when a backbone's tokenizer has none, and how to name them.

Every stage formats prompts with the tokenizer's chat template (data/formatting.py), so a base
model without one (Gemma 3 270M is a pretrained, not instruction-tuned, model) needs one chosen
for it. The choice changes what the experts learn to answer after, so it is never silent: the
backbone records it (`Backbone.chat_template`) and every artifact's manifest repeats it.

* `chatml`: SmolLM2's own format; the tiny Llama and any template-less HF model get it.
* `plain`: for base models. A BOS token (Gemma degrades badly without one), then
  ``User: ...`` / ``Assistant: ...`` lines, each assistant turn closed by the EOS token so a
  trained expert learns to stop. The generation prompt ends with ``Assistant:`` and no trailing
  space: SentencePiece vocabularies attach the space to the next word, so the answer's first
  token is ``▁word`` exactly as in pretraining text.
"""

from __future__ import annotations

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

PLAIN_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

TEMPLATES = {"chatml": CHATML_TEMPLATE, "plain": PLAIN_TEMPLATE}

# What `Backbone.chat_template` / a manifest's `chat_template` says when the tokenizer brought its
# own template (TrinityX supplied nothing).
FROM_TOKENIZER = "tokenizer"


def template_label(template: str | None) -> str:
    """`chatml` / `plain` when `template` is one TrinityX supplies, else `tokenizer`."""
    for name, text in TEMPLATES.items():
        if template == text:
            return name
    return FROM_TOKENIZER
