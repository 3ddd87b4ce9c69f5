"""Inference fast path of `MoCaELinear` (mixed in): Eq. MoCaE with fewer kernel launches.

A one-token decode step of a small model on CPU is dominated by per-op dispatch, not FLOPs, so
this path (taken under no_grad, without autocast and with a frozen router) keeps the math of
`MoCaELinear._graph_forward` but: runs on 2-D rows; fuses the router bias into the A matmul;
expands gates to ranks with one tiny matmul against a cached one-hot E (K, R) instead of a
gather; folds fixed gates into B once per call (B diag(g_r), cached in `RoutingState.cache`),
so a decode step is base + one rank-R LoRA; accumulates into the base output with an in-place
addmm; and never casts buffers per call (dtype-cast copies are cached).
Pure torch: no transformers, no I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .router import broadcast_gates, combine_gates


class FastPathMixin:
    """`_fast_forward` and its caches; needs MoCaELinear's buffers, `state`, `_R`, `_cache`."""

    def _fast_forward(self, x: Tensor) -> Tensor:
        """Inference path: the same math in fewer kernel launches, no per-call casts or gathers.

        Everything runs on 2-D rows x2 (N, d_in). Token mode: h = x2 [A; W_r]^T + [0; b_r] (one
        matmul gives rank activations and router logits), p = softmax(z / T), the gate
        expansion p E with a cached one-hot E (K, R), one multiply, one in-place addmm into the
        base output. Fixed gates: folded into B once per call (`_fixed_plan`), so a decode step
        is the base matmul plus one rank-R LoRA. Small ops dominate a one-token decode step on
        CPU, so every avoided launch counts.
        """
        st, base = self.state, self.base_layer
        R = self._R
        if R == 0:
            return base(x)
        x2 = x.reshape(-1, x.shape[-1])  # (N, d_in)
        y = F.linear(x2, base.weight, base.bias) if self._plain_base else base(x2)  # (N, d_out)
        if st.gates is None:
            if self.router_bias is None:  # no router: prefs alone, or experts off
                return y.view(*x.shape[:-1], -1) if st.prefs is None else self._graph_forward(x)
            w, b, bt, expand = self._token_weights(x.dtype)
            h = F.linear(x2, w, b)  # (N, R + K), router bias included
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
            a, g_r, bt = plan
            hg = F.linear(x2, a)  # (N, R)
            if g_r is not None:  # distinct gates per batch row: (B, 1, R) against (B, T, R)
                hg.view(*x.shape[:-1], R).mul_(broadcast_gates(g_r, x.dim()))
        y.addmm_(hg, bt)
        return y.view(*x.shape[:-1], -1)

    def _token_weights(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """[A; s (.) W_r] (R+K, d_in), [0; s (.) b_r + c] (R+K,), B^T (R, d_out), one-hot E (K, R).

        The layer's gate calibration z' = z * s + c is folded into the router rows, so the
        calibrated logits come out of the A matmul at no extra cost. Cached until a buffer is
        replaced (add_expert, attach_router, set_gate_calibration, .to) or changed in place
        (load_state_dict bumps the version counters).
        """
        a, rb, bm = self.lora_A_cat, self.router_bias, self.lora_B_cat
        gs, gb = self.gate_scale, self.gate_bias
        c = self._cache
        version = a._version + rb._version + bm._version + gs._version + gb._version
        key = (a, rb, bm, gs, gb)
        if c is None or not (
            all(x is y for x, y in zip(c[0], key, strict=True))
            and c[1] == version
            and c[2] == dtype
        ):
            R = self._R
            s = gs.to(a.dtype)
            rows = torch.cat([a[:R], a[R:] * s[:, None]], 0)  # (R + K, d_in)
            bias = torch.cat([a.new_zeros(R), rb.to(a.dtype) * s + gb.to(a.dtype)])  # (R + K,)
            expand = F.one_hot(self.rank_to_expert, self.num_experts).T.to(dtype)  # (K, R)
            weights = (rows.to(dtype), bias.to(dtype), bm.to(dtype).t(), expand.contiguous())
            self._cache = c = (key, version, dtype, weights)
        return c[3]

    def _fixed_plan(self, gates: Tensor, x: Tensor) -> tuple | None:
        """(A_R, g_r or None, B_g^T) for fixed gates, or None when every gate is zero.

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
        a = self.lora_A_cat[:R].to(x.dtype)  # (R, d_in), a view for same-dtype models
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
