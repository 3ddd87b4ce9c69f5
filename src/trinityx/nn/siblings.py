"""Sibling MoCaE layers that read one input (q/k/v, gate/up) share one LoRA A matmul.

In a decoder block q_proj, k_proj and v_proj all read the attention's normed hidden state, and
gate_proj and up_proj the MLP's. On the inference fast path (mocae_fast.py) the group's first
member, the leader, computes for all S members at once (Eq. MoCaE, stacked)

    h = x [A_1; ...; A_S; W_r1; ...; W_rS]^T + [0; b_r1; ...; b_rS]    (N, sum_s R_s + S K)

and in token mode their gates too: one softmax over (N, S, K) (each member's own router rows
and calibration, softmax over its own K), one expansion against a block-diagonal one-hot
(S K, sum_s R_s), one multiply. Every member then adds only its own slice, y_s = W0_s x +
hg_s B_s^T: S - 1 A matmuls and 3 (S - 1) small ops fewer per group. With fixed gates
(sequence routing unfolded, fixed weights, experts off) only the A matmul is shared.

A member is served from the leader's result only for the very same input tensor (same object,
same version counter) under the same routing inputs, once; anything else (another input, an
input changed in place, a member called before its leader, inference-mode tensors, layers
without routers in token mode) takes the layer's own path. Training, autograd and autocast
never get here (`MoCaELinear.forward` sends them to the graph path). Groups are formed once,
when the experts are injected (`group_siblings`). Pure torch: no transformers, no I/O.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .router import broadcast_gates, combine_gates

# leaf names of linears that read the same tensor inside one parent module (Llama, Gemma 3)
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Stacked:
    """The members' weights stacked for one mode and dtype; `key` tells when to rebuild.

    wt: [A_1; ...; A_S]^T (d_in, SR), in token mode with the router rows s (.) W_r of every
    member below the A rows (d_in, SR + S K) and the bias b = [0; s (.) b_r + c]; expand: the
    block-diagonal one-hot (S K, SR) taking member s's gates to its ranks; bts: [B_s^T];
    spans: member s's columns (offset, R_s) of h.
    """

    __slots__ = ("key", "held", "wt", "b", "expand", "bts", "spans", "SR", "K")

    def __init__(self, members: list, key: list, held: list, dtype: torch.dtype, token: bool):
        self.key, self.held = key, held  # held: the buffers keyed by id, kept alive
        self.spans, off = [], 0
        for m in members:
            self.spans.append((off, m._R))
            off += m._R
        self.SR, self.K = off, members[0].num_experts
        a = [m.lora_A_cat[: m._R] for m in members]
        self.b = self.expand = self.bts = None
        if token:
            routers = [m._router_rows() for m in members]  # [(s (.) W_r, s (.) b_r + c)]
            a += [w_r for w_r, _ in routers]
            self.b = torch.cat([a[0].new_zeros(off)] + [b for _, b in routers]).to(dtype)
            K, dev = self.K, a[0].device
            self.expand = torch.zeros(len(members) * K, off, dtype=dtype, device=dev)  # (S K, SR)
            for s, (m, (o, r)) in enumerate(zip(members, self.spans, strict=True)):
                self.expand[s * K : (s + 1) * K, o : o + r] = F.one_hot(m.rank_to_expert, K).T
            self.bts = [m.lora_B_cat.to(dtype).t() for m in members]  # [(R_s, d_out)]
        self.wt = torch.cat(a, 0).to(dtype).t()  # a view: one addmm / mm per call


class _Kept:
    """The leader's result for one input, waiting for the other members (each served once)."""

    __slots__ = ("x", "version", "routing", "pending", "left", "stacked", "h", "z", "hg", "plans")

    def __init__(self, x: Tensor, st, size: int, stacked: _Stacked) -> None:
        self.x = weakref.ref(x)  # never keeps an activation alive
        self.version = x._version
        self.routing = (st.gates, st.prefs, st.pref_mode, st.temperature, st.top_k)
        self.pending = [False] + [True] * (size - 1)  # the leader is served at once
        self.left = size - 1
        self.stacked = stacked
        self.h = self.z = self.hg = self.plans = None

    def serves(self, slot: int, x: Tensor, st) -> bool:
        """The same input tensor, unchanged, under the same routing inputs, not yet served."""
        g, p, mode, temp, top_k = self.routing
        return (
            self.pending[slot]
            and self.x() is x
            and self.version == x._version
            and st.gates is g
            and st.prefs is p
            and st.pref_mode == mode
            and st.temperature == temp
            and st.top_k == top_k
        )


class SiblingGroup:
    """S >= 2 MoCaE layers reading one input; member 0 (the leader) runs the shared matmul.

    `runs` counts shared matmuls, `hits` members served from one (tests read both).
    """

    def __init__(self, members: list) -> None:
        self.members = members
        self.runs = 0
        self.hits = 0
        self._kept: _Kept | None = None
        self._stacked: dict[tuple[bool, torch.dtype], _Stacked] = {}  # (token mode, dtype)
        for slot, m in enumerate(members):
            m._group, m._group_slot = self, slot

    def __getstate__(self) -> dict:  # pickling a model: caches and the weakref are not state
        return {**self.__dict__, "_kept": None, "_stacked": {}}

    def forward(self, layer, x: Tensor) -> Tensor | None:
        """`layer`'s output for x from the shared matmul, or None: take the layer's own path."""
        slot = layer._group_slot
        if slot == 0:
            return self._lead(layer, x)
        k = self._kept
        if k is None or not k.serves(slot, x, layer.state):
            return None
        k.pending[slot] = False
        k.left -= 1
        if k.left == 0:
            self._kept = None  # all served: drop h
        self.hits += 1
        return self._serve(layer, slot, x, x.reshape(-1, x.shape[-1]), k)

    def _lead(self, layer, x: Tensor) -> Tensor | None:
        self._kept = None
        if x.is_inference():
            return None  # no version counter to tell an in-place change: members on their own
        st = layer.state
        token = st.gates is None
        if not token:
            plans = [m._fixed_plan(st.gates, x) for m in self.members]  # cached per call
            if all(p is None for p in plans):
                return None  # all gates zero (experts off): each member is its base layer
        stacked = self._stacked_weights(token, x.dtype)
        if stacked is None:
            return None  # token mode on layers without routers: prefs alone or experts off
        k = _Kept(x, st, len(self.members), stacked)
        x2 = x.reshape(-1, x.shape[-1])  # (N, d_in)
        if token:
            self._token_run(x, x2, st, k)
        else:
            k.plans, k.h = plans, torch.mm(x2, stacked.wt)  # (N, SR)
        self._kept = k
        self.runs += 1
        return self._serve(layer, 0, x, x2, k)

    def _token_run(self, x: Tensor, x2: Tensor, st, k: _Kept) -> None:
        """h, the raw router logits z and the gated rank activations hg of every member."""
        sw = k.stacked
        SR, K, S = sw.SR, sw.K, len(self.members)
        h = torch.addmm(sw.b, x2, sw.wt)  # (N, SR + S K), router biases included
        k.z = z = h.narrow(1, SR, S * K)  # (N, S K) calibrated router logits, member by member
        if st.temperature != 1.0:
            z = z / st.temperature
        z = z.view(-1, S, K)  # (N, S, K): each member's softmax over its own K
        if z.dtype == torch.float32:
            gates = torch.softmax(z, -1)
        else:
            gates = torch.softmax(z, -1, dtype=torch.float32).to(z.dtype)
        if st.prefs is not None or st.top_k is not None:  # (B, K) prefs need (B, T, S, K)
            gates = gates.view(*x.shape[:-1], S, K)
            gates = combine_gates(gates, st.prefs, st.pref_mode, st.top_k)
        k.hg = h.narrow(1, 0, SR) * torch.mm(gates.reshape(-1, S * K), sw.expand)  # (N, SR)

    def _serve(self, layer, slot: int, x: Tensor, x2: Tensor, k: _Kept) -> Tensor:
        """y_s = W0_s x + hg_s B_s^T from member `slot`'s columns of the kept result."""
        y = layer._base_rows(x2)  # (N, d_out)
        off, r = k.stacked.spans[slot]
        if k.plans is None:  # token mode
            y.addmm_(k.hg.narrow(1, off, r), k.stacked.bts[slot])
            st = layer.state
            if st.record:
                K = k.stacked.K
                z = k.z.narrow(1, slot * K, K)  # (N, K) this member's calibrated logits
                st.records.append(z.clone().view(*x.shape[:-1], K))  # a view would keep h
        elif k.plans[slot] is not None:
            _, g_r, bt = k.plans[slot]
            hg = k.h.narrow(1, off, r)  # (N, R_s)
            if g_r is not None:  # distinct gates per batch row: (B, 1, R) against (B, T, R)
                hg.view(*x.shape[:-1], r).mul_(broadcast_gates(g_r, x.dim()))
            y.addmm_(hg, bt)
        return y.view(*x.shape[:-1], -1)

    def _stacked_weights(self, token: bool, dtype: torch.dtype) -> _Stacked | None:
        """The stacked weights, rebuilt when a member's buffers are replaced or changed in place;
        None in token mode when a member has no router."""
        key, held = [], []
        for m in self.members:
            if token:
                if m._buffers.get("router_bias") is None:
                    return None
                k, h = m._token_key()
            else:
                a = m._buffers["lora_A_cat"]
                k, h = (id(a), a._version), a
            key.append(k)
            held.append(h)
        sw = self._stacked.get((token, dtype))
        if sw is None or sw.key != key:
            sw = self._stacked[(token, dtype)] = _Stacked(self.members, key, held, dtype, token)
        return sw


def group_siblings(layers: dict[str, nn.Module]) -> list[SiblingGroup]:
    """Group the MoCaE layers (module name -> layer) that read one input; returns the groups.

    Members of a group share a parent module and a `SIBLINGS` set, have the same input width
    and number of experts and a non-zero total rank; a set with fewer than two such members
    stays ungrouped. Any previous grouping of these layers is dissolved first.
    """
    ungroup(layers)
    found: dict[tuple[str, int], dict[str, nn.Module]] = {}
    for name, layer in layers.items():
        parent, _, leaf = name.rpartition(".")
        for i, names in enumerate(SIBLINGS):
            if leaf in names:
                found.setdefault((parent, i), {})[leaf] = layer
    groups = []
    for (_, i), byname in found.items():
        members = [byname[n] for n in SIBLINGS[i] if n in byname and byname[n].total_rank > 0]
        shapes = {(m.base_layer.in_features, m.num_experts) for m in members}
        if len(members) >= 2 and len(shapes) == 1:
            groups.append(SiblingGroup(members))
    return groups


def ungroup(layers: dict[str, nn.Module]) -> None:
    """Every layer back on its own path (e.g. to compare against the shared matmul)."""
    for layer in layers.values():
        layer._group, layer._group_slot = None, 0
