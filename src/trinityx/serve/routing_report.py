"""The `routing` each finished choice reports: the gates it was generated with and why.

Built once per row when it finishes (serve/scheduler.py): the user's weights pi as resolved
(or the one-hot harmless the refusal dial put in their place), the mean gates over the
generated tokens, the calibrated prompt-level router probabilities and, with hhh.per_token,
the gates of every token, the text each token added and (token routing) its gates per
transformer block, which is what the playground's heat map colours and shows on hover.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from .batch import Row
from .served import HARMLESS, ServedModel


def routing_report(s: ServedModel, row: Row) -> dict | None:
    """The routing dict of one finished row (None for a plain model); see protocol.Routing."""
    if s.tx is None:
        return None
    hhh = row.req.hhh
    pi = s.check_hhh(hhh)
    g = torch.stack(row.gates[: len(row.out_ids)])  # (S, K) one per generated token
    rep = {
        "routing": s.routing,
        "weight_mode": "multiply" if hhh is None else hhh.mode,
        "weights": None if pi is None else s.named(pi),
        "gates": s.named(g.mean(0)),
        "router_probs": None if row.probs is None else s.named(row.probs),
    }
    if row.dial is not None:
        rep["refusal_dial"] = row.dial
        if row.dial["fired"]:  # the dial replaced pi with one-hot harmless
            rep["weights"] = {n: float(n == HARMLESS) for n in s.expert_names}
    if hhh is not None and hhh.preset is not None:
        rep["preset"] = hhh.preset
    if hhh is not None and hhh.per_token:
        rep["per_token"] = [s.named(t) for t in g]
        rep["tokens"] = token_pieces(s.decode, row.out_ids)
        if row.layer_gates:
            blocks = torch.stack(row.layer_gates[: len(row.out_ids)])  # (S, NB, K)
            rep["layers"] = s.blocks[0]
            rep["per_layer"] = blocks.round(decimals=4).tolist()
    return rep


def token_pieces(decode: Callable[[Sequence[int]], str], ids: list[int]) -> list[str]:
    """The text each generated token added, by incremental decoding: a multi-byte character
    lands on the token that completes it, so the pieces join to the answer's text."""
    out, prev = [], ""
    for i in range(len(ids)):
        text = decode(ids[: i + 1])
        if not text.startswith(prev):  # a replacement char resolved; keep the tail aligned
            prev = prev[: len(os.path.commonprefix([prev, text]))]
        out.append(text[len(prev) :])
        prev = text
    return out
