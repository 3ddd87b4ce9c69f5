"""Record types: the only data types that cross stage boundaries.

Every reader turns its format into one of these, so stages never see raw files. Prompts are kept as
chat messages (role/content dicts) so the backbone's own chat template does the formatting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class SFTExample:
    """A prompt (chat messages ending with a user turn) and the assistant response to learn."""

    messages: tuple[Message, ...]
    response: str
    dimension: str | None = None  # "helpful" | "harmless" | "honest" when known
    source: str = ""  # "file:line" for error messages and manifests


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (chosen) and a dispreferred (rejected) response, for DPO and judges."""

    messages: tuple[Message, ...]
    chosen: str
    rejected: str
    dimension: str | None = None
    source: str = ""

    def as_sft(self) -> SFTExample:
        """The chosen side as an SFT example (SFT on safe answers before/instead of DPO)."""
        return SFTExample(self.messages, self.chosen, self.dimension, self.source)


@dataclass(frozen=True)
class RoutingExample:
    """A prompt with which-dimension target weights (one-hot, or soft for mixed prompts)."""

    messages: tuple[Message, ...]
    weights: dict[str, float] = field(default_factory=dict)  # dimension -> weight, sums to 1
    source: str = ""


@dataclass(frozen=True)
class MCQuestion:
    """A TruthfulQA-style question with MC1 (single true) and MC2 (several true) choice sets."""

    question: str
    mc1_choices: tuple[str, ...]
    mc1_labels: tuple[int, ...]
    mc2_choices: tuple[str, ...]
    mc2_labels: tuple[int, ...]
    source: str = ""


def user_prompt(text: str, system: str | None = None) -> tuple[Message, ...]:
    """Chat messages for a single-turn prompt."""
    msgs: list[Message] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": text})
    return tuple(msgs)


def prompt_text(messages: tuple[Message, ...]) -> str:
    """The last user turn: what routers and judges read when they need plain text."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"] if messages else ""
