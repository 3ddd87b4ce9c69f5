"""Inference fast path of `MoCaELinear` (mixed in): Eq. MoCaE with fewer kernel launches.

A one-token decode step of a small model on CPU is dominated by per-op dispatch, not FLOPs, so
this path (taken under no_grad, without autocast and with a frozen router) keeps the math of
`MoCaELinear._graph_forward` but: runs on 2-D rows; fuses the router bias into the A matmul;
expands gates to ranks with one tiny matmul against a cached one-hot E (K, R) instead of a
gather; folds fixed gates into B once per call (B diag(g_r), cached in `RoutingState.cache`),
so a decode step is base + one rank-R LoRA; accumulates into the base output with an in-place
addmm; and never casts buffers per call (dtype-cast copies are cached). Sibling layers that read
one input (q/k/v, gate/up) share their A matmul through a `SiblingGroup` (siblings.py).
Pure torch: no transformers, no I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .router import broadcast_gates, combine_gates


class FastPathMixin:
    """`_fast_forward` and its caches; needs MoCaELinear's buffers, `state`, `_R`, `_cache`."""

    _group = None  # the layer's SiblingGroup (siblings.py), set by `group_siblings`
    _group_slot = 0  # its index in the group; 0 is the leader, which runs the shared matmul

    def _fast_forward(self, x: Tensor) -> Tensor:
        """Inference path: the same math in fewer kernel launches, no per-call casts or gathers.

        Everything runs on 2-D rows x2 (N, d_in). Token mode: h = x2 [A; W_r]^T + [0; b_r] (one
        matmul gives rank activations and router logits), p = softmax(z / T), the gate
        expansion p E with a cached one-hot E (K, R), one multiply, one in-place addmm into the
        base output. Fixed gates: folded into B once per call (`_fixed_plan`), so a decode step
        is the base matmul plus one rank-R LoRA. Small ops dominate a one-token decode step on
        CPU, so every avoided launch counts.
        """
        if self._group is not None:
            y = self._group.forward(self, x)  # served from the group's shared A matmul
            if y is not None:
                return y
        st, R = self.state, self._R
        if R == 0:
            return self.base_layer(x)
        x2 = x.reshape(-1, x.shape[-1])  # (N, d_in)
        y = self._base_rows(x2)  # (N, d_out)
        if st.gates is None:
            if self._buffers["router_bias"] is None:  # no router: prefs alone, or experts off
                return y.view(*x.shape[:-1], -1) if st.prefs is None else self._graph_forward(x)
            wt, b, bt, expand = self._token_weights(x.dtype)
            h = torch.addmm(b, x2, wt)  # (N, R + K), router bias included (F.linear's op)
            z = h.narrow(1, R, h.shape[1] - R)  # (N, K) calibrated router logits
            if st.record:
                st.records.append(z.clone().view(*x.shape[:-1], -1))  # a view would keep h
            if st.temperature != 1.0:
                z = z / st.temperature
            if z.dtype == torch.float32:
                gates = torch.softmax(z, -1)
            else:
                gates = torch.softmax(z, -1, dtype=torch.float32).to(z.dtype)
            if st.prefs is not None or st.top_k is not None:  # (B, K) prefs need (B, T, K)
                gates = gates.view(*x.shape[:-1], -1)
                gates = combine_gates(gates, st.prefs, st.pref_mode, st.top_k).reshape(
                    -1, z.shape[1]
                )
            hg = h.narrow(1, 0, R) * torch.mm(gates, expand)  # (N, R)
        else:
            plan = self._fixed_plan(st.gates, x)
            if plan is None:
                return y.view(*x.shape[:-1], -1)  # all gates zero: exactly the base layer
            at, g_r, bt = plan
            hg = torch.mm(x2, at)  # (N, R)
            if g_r is not None:  # distinct gates per batch row: (B, 1, R) against (B, T, R)
                hg.view(*x.shape[:-1], R).mul_(broadcast_gates(g_r, x.dim()))
        y.addmm_(hg, bt)
        return y.view(*x.shape[:-1], -1)

    def _base_rows(self, x2: Tensor) -> Tensor:
        """W0 x + b0 on rows x2 (N, d_in) -> (N, d_out); F.linear directly for a plain nn.Linear.

        Reads the module dicts directly: nn.Module.__getattr__ costs ~0.5 us a lookup, three
        per layer and decode step.
        """
        base = self._modules["base_layer"]
        if self._plain_base:
            p = base._parameters
            return F.linear(x2, p["weight"], p["bias"])
        return base(x2)

    def _token_key(self) -> tuple[tuple, tuple]:
        """(ids and summed version, the tensors) of the buffers token-mode weights are built from.

        A cache holding the tensors can compare keys as plain ints: a held tensor's id is not
        reused, and load_state_dict's in-place copies bump the versions.
        """
        b = self._buffers  # direct: a decode step reads these on every call
        a, rb, bm = b["lora_A_cat"], b["router_bias"], b["lora_B_cat"]
        gs, gb = b["gate_scale"], b["gate_bias"]
        v = a._version + rb._version + bm._version + gs._version + gb._version
        return (id(a), id(rb), id(bm), id(gs), id(gb), v), (a, rb, bm, gs, gb)

    def _router_rows(self) -> tuple[Tensor, Tensor]:
        """s (.) W_r (K, d_in) and s (.) b_r + c (K,): the calibration z' = z s + c folded in."""
        a, rb = self.lora_A_cat, self.router_bias
        s = self.gate_scale.to(a.dtype)
        return a[self._R :] * s[:, None], rb.to(a.dtype) * s + self.gate_bias.to(a.dtype)

    def _token_weights(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """[A; s (.) W_r]^T (d_in, R+K), [0; s (.) b_r + c] (R+K,), B^T (R, d_out), one-hot E (K, R).

        The layer's gate calibration z' = z * s + c is folded into the router rows, so the
        calibrated logits come out of the A matmul at no extra cost. The rows are kept as a
        transposed view, so the A matmul is one addmm (F.linear adds a transpose op per call).
        Cached until a buffer is replaced (add_expert, attach_router, set_gate_calibration, .to) or changed in place
        (load_state_dict bumps the version counters).
        """
        c, (key, held) = self._cache, self._token_key()
        if c is None or c[0] != key or c[1] is not dtype:
            R, a = self._R, held[0]
            w_r, b_r = self._router_rows()
            rows = torch.cat([a[:R], w_r], 0)  # (R + K, d_in)
            bias = torch.cat([a.new_zeros(R), b_r])  # (R + K,)
            expand = F.one_hot(self.rank_to_expert, self.num_experts).T.to(dtype)  # (K, R)
            bt = held[2].to(dtype).t()  # (R, d_out)
            weights = (rows.to(dtype).t(), bias.to(dtype), bt, expand.contiguous())
            self._cache = c = (key, dtype, weights, held)
        return c[2]

    def _fixed_plan(self, gates: Tensor, x: Tensor) -> tuple | None:
        """(A_R^T, g_r or None, B_g^T) for fixed gates, or None when every gate is zero.

        (K,) gates, or (B, K) with identical rows: g folded into B once per call,
        B_g = B diag(g_r) (d_out, R) and g_r = None. Distinct rows: g_r (B, R) multiplies h per
        row. Per-token gates (B, T, K) are expanded on every call (they change every token).
        Cached in `state.cache` (emptied by `RoutingState.reset`, i.e. after every call).
        """
        hit = self.state.cache.get(self)
        if hit is not None and hit[0] is gates and hit[1] == gates._version and hit[2] == x.dtype:
            return hit[3]
        assert gates.shape[-1] == self.num_experts, f"gates {tuple(gates.shape)} vs K experts"
        R, bm = self._R, self.lora_B_cat
        g_r = gates.to(device=x.device, dtype=torch.float32).index_select(-1, self.rank_to_expert)
        a = self.lora_A_cat[:R].to(x.dtype).t()  # (d_in, R), a view for same-dtype models
        plan: tuple | None
        if not bool(g_r.any()):
            plan = None
        elif g_r.dim() == 1 or (g_r.dim() == 2 and bool((g_r == g_r[:1]).all())):
            b_g = bm.float() * g_r.reshape(-1, R)[0]  # (d_out, R) = B diag(g_r)
            plan = (a, None, b_g.to(x.dtype).t())
        else:
            plan = (a, g_r.to(x.dtype), bm.to(x.dtype).t())
        if gates.dim() < 3:
            self.state.cache[self] = (gates, gates._version, x.dtype, plan)
        return plan
