"""What the scheduler serves: a causal LM, its tokenizer, and (for TrinityX) its routing.

`ServedModel` is the narrow surface between the batching scheduler and a model: tokenise under
one lock (the HTTP threads and the scheduler thread never use the tokenizer at the same time),
validate a request's HHH options, turn a group of rows into routing inputs for one forward
(`RoutingState` fields, Eq. gates), and summarise the gates each row was generated with.
`load_served` builds one from a composed artifact folder or any evaluation-harness spec
(`base`, `expert:<dir>`, `merge:<method>`, `hf:<dir>`, ...) so baselines serve side by side.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from trinityx.data.formatting import prompt_string
from trinityx.model.presets import HARMLESS, resolve_preset
from trinityx.nn.router import combine_gates

from .protocol import HHHOptions

_BLOCK = re.compile(r"layers\.(\d+)\.")  # the decoder block index in a module name


@dataclass
class GroupRouting:
    """Routing inputs of rows that share forwards (B rows, K experts).

    token: prefs (B, K) go to the per-layer routers with `mode` / `top_k`; gates None.
    fixed gates (sequence / none routing, weight mode fixed): gates (B, K), held for the decode.
    plain model: both None.
    """

    prefs: Tensor | None = None  # (B, K)
    gates: Tensor | None = None  # (B, K)
    probs: Tensor | None = None  # (B, K) calibrated prompt-level router probs (report only)
    mode: str = "multiply"
    top_k: int | None = None
    dial: list[dict | None] | None = None  # per row at prefill: the refusal dial's decision

    def select(self, keep: Tensor) -> GroupRouting:
        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[keep]

        return GroupRouting(
            pick(self.prefs), pick(self.gates), pick(self.probs), self.mode, self.top_k
        )

    def cat(self, other: GroupRouting) -> GroupRouting:
        def join(a: Tensor | None, b: Tensor | None) -> Tensor | None:
            return None if a is None else torch.cat([a, b])

        return GroupRouting(
            join(self.prefs, other.prefs),
            join(self.gates, other.gates),
            join(self.probs, other.probs),
            self.mode,
            self.top_k,
        )


class ServedModel:
    """A loaded model as the server sees it; `tx` is the TrinityXModel or None (plain LM)."""

    def __init__(self, lm, tokenizer, name: str, tx=None) -> None:
        self.lm, self.tokenizer, self.name, self.tx = lm.eval(), tokenizer, name, tx
        self.tok_lock = threading.Lock()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = lm.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos)
        self.context_length = int(getattr(lm.config, "max_position_embeddings", 2048) or 2048)

    @property
    def expert_names(self) -> list[str]:
        return [] if self.tx is None else list(self.tx.expert_names)

    @property
    def routing(self) -> str | None:
        return None if self.tx is None else self.tx.routing

    @property
    def device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    # ------------------------------------------------------------------ tokenizer (one lock)
    def encode_chat(self, messages: Sequence[dict]) -> list[int]:
        """Chat-templated prompt ids (ends with the assistant header), no padding."""
        with self.tok_lock:
            text = prompt_string(self.tokenizer, list(messages))
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, text: str) -> list[int]:
        """Raw prompt ids (no chat template; special tokens as the tokenizer adds them)."""
        with self.tok_lock:
            return self.tokenizer(text)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        with self.tok_lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ------------------------------------------------------------------ HHH options
    @property
    def presets(self) -> dict:
        return {} if self.tx is None else dict(getattr(self.tx, "presets", {}))

    def expand_preset(self, hhh: HHHOptions | None) -> HHHOptions | None:
        """hhh with its named preset's fields filled in (fields the request set win)."""
        if hhh is None or hhh.preset is None:
            return hhh
        if self.tx is None:
            raise ValueError(f"{self.name!r} is a plain model without presets; remove hhh.preset")
        p = resolve_preset(self.presets, hhh.preset)
        own = hhh.model_fields_set
        fill = {
            k: getattr(p, k)
            for k in ("weights", "mode", "top_k", "refusal_tau", "allow_negative")
            if k not in own
        }
        return hhh.model_copy(update=fill)

    def check_hhh(self, hhh: HHHOptions | None) -> Tensor | None:
        """Resolved pi (K,) or None; ValueError (the message names the fix) if invalid."""
        if hhh is None:
            return None
        if self.tx is None:
            raise ValueError(
                f"{self.name!r} is a plain model without HHH experts; remove `hhh` or serve a "
                "composed TrinityX artifact"
            )
        if hhh.base:
            other = sorted(hhh.model_fields_set - {"base", "per_token"})
            if other:
                raise ValueError(f"hhh.base runs the plain backbone; remove hhh {other}")
            return None
        if hhh.preset is not None:
            resolve_preset(self.presets, hhh.preset)
        if hhh.top_k is not None and hhh.top_k > len(self.expert_names):
            raise ValueError(f"top_k={hhh.top_k} exceeds the {len(self.expert_names)} experts")
        if hhh.refusal_tau is not None and HARMLESS not in self.expert_names:
            raise ValueError(
                f"refusal_tau needs a {HARMLESS!r} expert; this model has {self.expert_names}"
            )
        return self.tx.resolve_weights(hhh.weights, hhh.allow_negative, hhh.mode)

    def batch_key(self, hhh: HHHOptions | None) -> Hashable:
        """Rows with equal keys can share a forward: the layer routers read one mode / top_k
        per call, while fixed gates are per row anyway."""
        if self.tx is None:
            return None
        if hhh is not None and hhh.base:
            return "gates"
        mode = "multiply" if hhh is None else hhh.mode
        if self.tx.routing != "token" or mode == "fixed":
            return "gates"
        top_k = self.tx.top_k if hhh is None or hhh.top_k is None else hhh.top_k
        return ("token", mode, top_k)

    def prepare(self, ids: Tensor, mask: Tensor, hhh: list[HHHOptions | None]) -> GroupRouting:
        """Routing inputs for a new group of rows ids / mask (B, T), all with one batch_key."""
        if self.tx is None:
            return GroupRouting()
        tx, K = self.tx, len(self.expert_names)
        pis = [self.check_hhh(h) for h in hhh]
        probs = None
        if tx.routing == "sequence" and any(h is None or h.mode != "fixed" for h in hhh):
            probs = tx.router_probs(ids, mask)  # (B, K)
        dial = self._dial(ids, mask, hhh, pis, probs)
        ones = torch.ones(K)
        prefs = torch.stack([ones if p is None else p for p in pis]).to(self.device)  # (B, K)
        modes = ["multiply" if h is None else h.mode for h in hhh]
        top_ks = [self.tx.top_k if h is None or h.top_k is None else h.top_k for h in hhh]
        if self.batch_key(hhh[0]) != "gates":
            return GroupRouting(prefs=prefs, mode=modes[0], top_k=top_ks[0], dial=dial)
        rows = []
        for i, (pi, mode, k) in enumerate(zip(pis, modes, top_ks, strict=True)):
            if hhh[i] is not None and hhh[i].base:  # experts off: the expert term is exactly 0
                rows.append(torch.zeros(1, K, device=self.device))
                continue
            if mode == "fixed":
                base = pi[None]
            elif probs is not None:
                base = probs[i : i + 1]
            else:
                base = torch.full((1, K), 1.0 / K, device=self.device)
            p = None if pi is None else pi[None].to(self.device)
            rows.append(combine_gates(base, p, mode, k))  # (1, K)
        return GroupRouting(gates=torch.cat(rows).to(self.device), probs=probs, dial=dial)

    def _dial(self, ids, mask, hhh, pis: list, probs: Tensor | None) -> list[dict | None] | None:
        """The refusal dial (model/presets.py) per row: pi -> one-hot harmless (in place) where
        the calibrated p(harmless) of the prompt exceeds the row's tau; the decisions."""
        taus = [None if h is None else h.refusal_tau for h in hhh]
        if all(t is None for t in taus):
            return None
        p = probs if probs is not None else self.tx.router_probs(ids, mask)  # (B, K)
        h_idx, out = self.expert_names.index(HARMLESS), []
        onehot = torch.zeros(len(self.expert_names))
        onehot[h_idx] = 1.0
        for i, tau in enumerate(taus):
            if tau is None:
                out.append(None)
                continue
            ph = float(p[i, h_idx])
            out.append({"tau": tau, "p_harmless": ph, "fired": ph > tau})
            if ph > tau:
                pis[i] = onehot
        return out

    @contextlib.contextmanager
    def routed(self, r: GroupRouting, record: bool) -> Iterator[list[Tensor]]:
        """RoutingState set for one forward of the rows in `r`; yields the router-logit records
        (token routing: one (B, T, K) per routed layer)."""
        if self.tx is None:
            yield []
            return
        if r.gates is not None:
            fields = {"gates": r.gates}
        else:
            fields = {
                "prefs": r.prefs,
                "pref_mode": r.mode,
                "top_k": r.top_k,
                "record": record,
            }
        with self.tx._routing(**fields) as st:
            yield st.records

    def step_gates(self, r: GroupRouting, records: list[Tensor]) -> Tensor | None:
        """Gates (B, K) that produced each row's next token: token routing averages the layers'
        gates at the last position; fixed gates are returned as they are."""
        if self.tx is None:
            return None
        if r.gates is not None:
            return r.gates
        z = torch.stack([rec[:, -1].float() for rec in records], 1)  # (B, L, K)
        p = torch.softmax(z, -1)  # each layer's logits are calibrated where they are recorded
        return combine_gates(p, r.prefs, r.mode, r.top_k).mean(1)  # (B, K)

    @functools.cached_property
    def blocks(self) -> tuple[list[str], Tensor]:
        """Transformer block of each routed layer, in record order: (block names, index (L,))."""
        names = list(self.tx.layers)
        ids = [int(m.group(1)) if (m := _BLOCK.search(n)) else 0 for n in names]
        uniq = sorted(set(ids))
        return [f"block {b}" for b in uniq], torch.tensor([uniq.index(b) for b in ids])

    def block_gates(self, r: GroupRouting, records: list[Tensor]) -> Tensor | None:
        """Token routing: gates (B, n_blocks, K) at the last position, each block the mean of
        its routed linears (what the playground's heat map shows on hover). None otherwise."""
        if self.tx is None or r.gates is not None or not records:
            return None
        z = torch.stack([rec[:, -1].float() for rec in records], 1)  # (B, L, K)
        g = combine_gates(torch.softmax(z, -1), r.prefs, r.mode, r.top_k)  # (B, L, K)
        names, idx = self.blocks
        idx = idx.to(g.device)
        out = torch.zeros(g.shape[0], len(names), g.shape[2], device=g.device)
        out.index_add_(1, idx, g)  # (B, NB, K)
        count = torch.bincount(idx, minlength=len(names)).clamp_min(1)
        return out / count[None, :, None].to(g.dtype)

    def prompt_probs(self, records: list[Tensor], mask: Tensor) -> Tensor:
        """Token routing: calibrated prompt-level router probs (B, K) from the prefill records."""
        from trinityx.model.generation import pool_records

        return torch.softmax(self.tx.calibrate(pool_records(records, mask)).float(), -1)

    def named(self, t: Tensor) -> dict[str, float]:
        return dict(zip(self.expert_names, t.tolist(), strict=True))


def load_served(spec: str, config: str | None = None, name: str | None = None) -> ServedModel:
    """A composed artifact folder or an evaluation-harness spec -> ServedModel.

    `config` is an optional eval-config YAML for specs that need more than the spec string
    (`merge:<method>` reads `experts` and `merge`; `backbone` overrides an artifact's backbone).
    """
    from trinityx.config import load_config
    from trinityx.eval.baselines import build_eval_model
    from trinityx.eval.config import EvalConfig
    from trinityx.eval.model_api import HFEvalModel
    from trinityx.eval.trinityx_model import TrinityXEvalModel

    overrides = [f"model={spec}", "output_dir=unused"]
    cfg = load_config(EvalConfig, config, overrides) if config else EvalConfig(spec, "unused")
    em = build_eval_model(cfg)
    label = name or spec
    if isinstance(em, TrinityXEvalModel):
        return ServedModel(em.model.model, em.model.tokenizer, label, tx=em.model)
    if isinstance(em, HFEvalModel):
        return ServedModel(em.model, em.tokenizer, label)
    raise ValueError(
        f"{spec!r} is not one causal LM ({type(em).__name__}), so it cannot be served; serve "
        "`base`, `expert:<dir>`, `merge:<method>`, `hf:<dir>` or a composed artifact"
    )
