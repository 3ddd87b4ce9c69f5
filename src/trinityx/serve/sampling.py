"""Per-row decoding rules: penalties, temperature, nucleus sampling, stop strings, text deltas.

Every row of a batch keeps its own sampling settings and its own seeded `torch.Generator`, so a
seeded request draws the same tokens whatever else shares its batch. `TextTracker` turns the
growing token list into stream deltas that never show text a stop string will later cut, nor a
half-decoded UTF-8 character; the concatenated deltas equal the final text exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import Tensor

GREEDY_BELOW = 1e-5  # temperatures this small are greedy (as vLLM): z / T would overflow


@dataclass
class SamplingSettings:
    temperature: float = 1.0  # < GREEDY_BELOW: greedy
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


def make_generator(s: SamplingSettings, index: int) -> torch.Generator | None:
    """Choice `index` of a seeded request draws from seed + index; unseeded: fresh entropy."""
    if s.temperature < GREEDY_BELOW:
        return None
    g = torch.Generator()
    g.manual_seed(s.seed + index if s.seed is not None else int.from_bytes(os.urandom(8), "little"))
    return g


def next_token(
    logits: Tensor, s: SamplingSettings, out_ids: list[int], gen: torch.Generator | None
) -> int:
    """One token from one row's next-token logits (V,) under OpenAI's sampling fields.

    Penalties (OpenAI's definition, on the tokens generated so far): logit -= frequency * count
    + presence * (count > 0). Then greedy (temperature 0) or softmax(logit / T) restricted to
    the smallest set of tokens whose probability reaches top_p.
    """
    z = logits.float()
    if out_ids and (s.presence_penalty or s.frequency_penalty):
        tok, cnt = torch.tensor(out_ids, device=z.device).unique(return_counts=True)
        z = z.clone()
        z[tok] -= s.frequency_penalty * cnt.float() + s.presence_penalty
    if s.temperature < GREEDY_BELOW:
        return int(z.argmax())
    probs = torch.softmax(z / s.temperature, -1)  # (V,)
    if s.top_p < 1.0:
        p, idx = probs.sort(descending=True)
        drop = (p.cumsum(0) - p) >= s.top_p  # tokens after the nucleus is complete
        drop[0] = False  # the most likely token always stays (top_p may round to 0 in fp32)
        p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, idx, p)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))


@dataclass
class TextTracker:
    """Decoded text of one row so far, the part already streamed, and stop-string handling."""

    stops: list[str] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of `text` already emitted
    stopped: bool = False

    def update(self, text: str) -> str:
        """Take the row's full decoded text; return the new delta that is safe to emit."""
        self.text = text
        if self.stops:
            start = max(0, self.sent - max(len(s) for s in self.stops))
            hits = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                self.text, self.stopped = text[: min(hits)], True
                return self.flush()
        end = len(text) - self._held_back(text)
        if end <= self.sent:
            return ""
        delta, self.sent = text[self.sent : end], end
        return delta

    def flush(self) -> str:
        """Everything not yet emitted (the row has finished)."""
        delta, self.sent = self.text[self.sent :], max(self.sent, len(self.text))
        return delta

    def _held_back(self, text: str) -> int:
        """Characters at the end that may still become a stop string or a full character."""
        hold = 1 if text.endswith("\ufffd") else 0  # an incomplete multi-byte character
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        return hold
