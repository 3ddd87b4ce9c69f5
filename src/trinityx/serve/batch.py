"""The running batch: rows generating together over one left-padded KV cache.

Rows join (a prefilled group is left-padded to the batch's cache length and concatenated) and
leave (their cache rows are dropped, then columns that are padding for every remaining row are
trimmed). Positions follow each row's own attention mask, so padding never shifts RoPE and a row
computes what it would alone (up to float rounding of batched matmuls). One scheduler thread
owns a batch; nothing here is shared across threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DynamicCache

from .sampling import SamplingSettings, TextTracker


@dataclass
class Row:
    """One choice being generated (a request with n=3 has three rows)."""

    req: object  # scheduler.GenRequest
    index: int  # choice index within the request
    gen: torch.Generator | None
    tracker: TextTracker
    out_ids: list[int] = field(default_factory=list)
    gates: list[Tensor] = field(default_factory=list)  # (K,) per generated token
    probs: Tensor | None = None  # (K,) calibrated prompt-level router probs
    layer_gates: list[Tensor] = field(default_factory=list)  # (n_blocks, K) per token, on request
    dial: dict | None = None  # the refusal dial's decision for this row (hhh.refusal_tau)
    finish_reason: str | None = None

    @property
    def sampling(self) -> SamplingSettings:
        return self.req.sampling


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """input_ids (B, T) and attention_mask (B, T), left-padded (no tokenizer involved)."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, T - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[b, T - len(s) :] = 1
    return ids, mask


def _layers(cache: DynamicCache) -> list:
    layers = cache.layers
    for layer in layers:
        if getattr(layer, "is_sliding", False):
            raise NotImplementedError("sliding-window caches cannot be merged for batching")
    return layers


def _pad_cache(cache: DynamicCache, n: int) -> None:
    """Prepend n masked (zero) positions to every layer's keys / values (B, H, T, D)."""
    if n:
        for layer in _layers(cache):
            layer.keys = F.pad(layer.keys, (0, 0, n, 0))
            layer.values = F.pad(layer.values, (0, 0, n, 0))


@dataclass
class Batch:
    rows: list[Row]
    cache: DynamicCache
    mask: Tensor  # (B, L) 1 = a real token in the cache
    routing: object  # served.GroupRouting for the rows, in row order
    key: object  # served.batch_key shared by every row
    logits: Tensor | None = None  # (B, V) next-token logits, not yet sampled

    def join(self, other: Batch) -> Batch:
        """Append another batch's rows (caches left-padded to a common length); returns self."""
        L1, L2 = self.mask.shape[1], other.mask.shape[1]
        _pad_cache(self.cache, max(0, L2 - L1))
        _pad_cache(other.cache, max(0, L1 - L2))
        for a, b in zip(_layers(self.cache), _layers(other.cache), strict=True):
            a.keys = torch.cat([a.keys, b.keys])
            a.values = torch.cat([a.values, b.values])
        self.mask = torch.cat(
            [F.pad(self.mask, (max(0, L2 - L1), 0)), F.pad(other.mask, (max(0, L1 - L2), 0))]
        )
        self.logits = torch.cat([self.logits, other.logits])
        self.routing = self.routing.cat(other.routing)
        self.rows += other.rows
        return self

    def keep(self, keep: list[int]) -> None:
        """Keep only rows `keep` (indices), then trim all-padding cache columns."""
        if len(keep) == len(self.rows):
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask[idx]
        self.routing = self.routing.select(idx)
        if self.logits is not None:
            self.logits = self.logits[idx]
        for layer in _layers(self.cache):
            layer.keys, layer.values = layer.keys[idx], layer.values[idx]
        if not self.rows:
            return
        lead = int((self.mask.cumsum(1) == 0).sum(1).min())  # columns padding in every row
        if lead:
            self.mask = self.mask[:, lead:]
            for layer in _layers(self.cache):
                layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
