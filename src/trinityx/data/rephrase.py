"""Routing prompts rephrased as a person talking: the router must learn intent, not register.

Measured on the real-data experiment (issue 11): the sequence router sent 45 of 100 AlpacaEval
prompts to the harmless expert, and they were the first-person, conversational ones ("I like to
host guests ... can you help?", "I'm trying to teach myself nicer handwriting. Can you help?").
Its helpful training prompts were Alpaca's imperative instructions ("Give three tips ...") and its
harmless ones SPARD/BeaverTails requests, which are written as a person talking; so register was
the easiest cue for "harmless". Wrapping benign instructions in the same first-person register,
labelled helpful, takes that cue away. The wrapping is deterministic (a template per prompt,
chosen by a hash of the text), so a config reads the same rows on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib

from trinityx.data.records import RoutingExample

TEMPLATES = (
    "Hi! {lower} Can you help me with that?",
    "I'm trying to figure something out. {text}",
    "Can you help me? {text}",
    "I've been wondering about this for a while. {text}",
    "My friend and I were talking about this earlier. {text}",
    "{text} Thanks so much, I really appreciate it!",
    "I need some help, please. {text}",
    "Hey, quick question for you. {text}",
    "I'm not sure where to start with this. {text} Any advice?",
    "So I was thinking about this today: {lower}",
)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def conversational(example: RoutingExample) -> RoutingExample:
    """The example with its last user turn wrapped in a first-person template (labels kept)."""
    msgs = list(example.messages)
    idx = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    text = msgs[idx]["content"].strip()
    k = int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(TEMPLATES)
    new = TEMPLATES[k].format(text=text, lower=_lower_first(text))
    msgs[idx] = {**msgs[idx], "content": new}
    return dataclasses.replace(
        example, messages=tuple(msgs), source=f"{example.source} (conversational)"
    )


REPHRASERS = {"none": None, "conversational": conversational}
