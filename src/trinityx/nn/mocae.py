"""MoCaE linear layer: K LoRA experts fused into one frozen nn.Linear, gated per token or prompt.

Every wrapped target linear computes (Eq. MoCaE)

    y = W0 x + sum_k g_k * s_k * B_k (A_k x)

with the experts stored fused (A_cat (R, d_in), B_cat (d_out, R), R = sum_k r_k, s_k folded
into B's columns) so the forward is two matmuls and a gather, never a Python loop over experts.
Lives here: `RoutingState` (the per-model object through which the wrapper passes gates,
preferences and temperature to every layer; no forward hooks) and `MoCaELinear`; its
inference fast path (same math, fewer kernel launches) is in mocae_fast.py.
Pure torch: no transformers, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mocae_fast import FastPathMixin
from .router import broadcast_gates, combine_gates


@dataclass(eq=False)
class RoutingState:
    """Mutable routing inputs shared by all MoCaE layers of one model (set before each forward).

    gates: fixed / sequence-level gates (K,), (B, K) or (B, T, K); when set, layer routers are
        bypassed and the gates are used as given (prefs/top_k are NOT applied: run
        `combine_gates` yourself, e.g. on a SequenceRouter's probabilities). prefs: user preference weights pi, (K,) or (B, K), combined with router probs
        by `combine_gates(mode=pref_mode)` in token mode (or with uniform probs if no router).
    temperature: calibrated router temperature T, probs = softmax(logits / T).
    top_k: keep only the k largest |g| per position (token / preference mode).
    record / records: token-routed layers append their router logits (B, T, K) after the layer's
        own calibration (`MoCaELinear.set_gate_calibration`; raw while it is the identity), in
        layer call order; detached unless record_grad (router training needs the graph).
    cache: per-call derived tensors of each layer (fixed gates folded into B), keyed by the
        layer; rebuilt when `gates` is replaced or modified in place, emptied by `reset`.
    """

    gates: Tensor | None = None
    prefs: Tensor | None = None
    pref_mode: str = "multiply"
    temperature: float = 1.0
    top_k: int | None = None
    record: bool = False
    record_grad: bool = False
    records: list[Tensor] = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    def reset(self) -> None:
        """Back to defaults (experts routed by the layer routers, nothing recorded)."""
        self.gates = None
        self.prefs = None
        self.pref_mode = "multiply"
        self.temperature = 1.0
        self.top_k = None
        self.record = False
        self.record_grad = False
        self.records = []
        self.cache = {}


class MoCaELinear(FastPathMixin, nn.Module):
    """A frozen nn.Linear plus fused LoRA experts and an optional per-layer token router.

    Buffers (state-dict names are stable): `base_layer.*`, `lora_A_cat` (R [+K], d_in) whose
    last K rows are the router weight W_r once `attach_router` is called (so one matmul
    x @ [A_cat; W_r]^T yields both rank activations and router logits), `lora_B_cat`
    (d_out, R) with s_k folded in, `rank_to_expert` (R,), `expert_scales` (K,),
    `router_bias` (K,). Gate index k follows `expert_names` (order of `add_expert`).
    """

    def __init__(self, base: nn.Linear, state: RoutingState) -> None:
        super().__init__()
        self.base_layer = base
        base.requires_grad_(False)
        self.state = state
        self.expert_names: list[str] = []
        self._ranks: list[int] = []
        w = base.weight
        self.register_buffer("lora_A_cat", w.new_zeros(0, base.in_features))
        self.register_buffer("lora_B_cat", w.new_zeros(base.out_features, 0))
        self.register_buffer("rank_to_expert", torch.zeros(0, dtype=torch.long, device=w.device))
        self.register_buffer("expert_scales", w.new_zeros(0))
        self.register_buffer("router_bias", None)
        # per-layer post-hoc calibration of the token router (z' = z * gate_scale + gate_bias):
        # temperature scaling sets gate_scale = 1 / T_l, vector scaling (w_l, b_l). Identity
        # until `set_gate_calibration`; saved in the artifact's calibration, not the state dict.
        self.register_buffer("gate_scale", w.new_ones(0), persistent=False)
        self.register_buffer("gate_bias", w.new_zeros(0), persistent=False)
        self.router_weight: nn.Parameter | None = None  # only while the router is trainable
        # inference fast path: python-side facts, refreshed by add_expert
        self._plain_base = type(base) is nn.Linear  # F.linear directly, no module call
        self._R = 0  # total rank R
        self._cache: tuple | None = None  # token-mode weights, see _token_weights

    # ----------------------------------------------------------------- construction
    @property
    def num_experts(self) -> int:
        return len(self.expert_names)

    @property
    def total_rank(self) -> int:
        return self.rank_to_expert.numel()

    @property
    def has_router(self) -> bool:
        return self.router_bias is not None

    def add_expert(self, name: str, lora_A: Tensor, lora_B: Tensor, scale: float) -> None:
        """Append expert k = num_experts: A_k (r, d_in), B_k (d_out, r), scale s_k (alpha / r)."""
        if name in self.expert_names:
            raise ValueError(f"expert {name!r} already added")
        if self.has_router:
            raise RuntimeError("add all experts before attach_router (router rows sit under A)")
        r = lora_A.shape[0]
        assert lora_A.shape == (r, self.base_layer.in_features), lora_A.shape
        assert lora_B.shape == (self.base_layer.out_features, r), lora_B.shape
        w = self.base_layer.weight
        a = lora_A.detach().to(dtype=w.dtype, device=w.device)
        b = lora_B.detach().to(dtype=w.dtype, device=w.device) * float(scale)
        k = self.num_experts
        self.lora_A_cat = torch.cat([self.lora_A_cat, a], 0)  # (R, d_in)
        self.lora_B_cat = torch.cat([self.lora_B_cat, b], 1)  # (d_out, R)
        idx = torch.full((r,), k, dtype=torch.long, device=w.device)
        self.rank_to_expert = torch.cat([self.rank_to_expert, idx])  # (R,)
        s = torch.tensor([float(scale)], dtype=w.dtype, device=w.device)
        self.expert_scales = torch.cat([self.expert_scales, s])  # (K,)
        self.gate_scale = torch.cat([self.gate_scale, s.new_ones(1)])  # (K,)
        self.gate_bias = torch.cat([self.gate_bias, s.new_zeros(1)])  # (K,)
        self.expert_names.append(name)
        self._ranks.append(r)
        self._R = sum(self._ranks)

    def attach_router(
        self, router_weight: Tensor, router_bias: Tensor | None = None, trainable: bool = False
    ) -> None:
        """Fuse a token router W_r (K, d_in), b_r (K,) under the LoRA A rows.

        Costs K * d_in extra multiply-adds per token inside the existing A matmul (no extra
        kernel launch). trainable=True keeps W_r, b_r as Parameters (the forward concatenates
        them, so gradients flow); call `freeze_router` afterwards to fuse them back.
        """
        k, d_in = router_weight.shape
        assert k == self.num_experts and d_in == self.base_layer.in_features, router_weight.shape
        w = self.base_layer.weight
        rw = router_weight.detach().to(dtype=w.dtype, device=w.device)
        rb = (
            torch.zeros(k, dtype=w.dtype, device=w.device)
            if router_bias is None
            else router_bias.detach().to(dtype=w.dtype, device=w.device).clone()
        )
        R = self.total_rank
        self.lora_A_cat = torch.cat([self.lora_A_cat[:R], rw], 0)  # (R + K, d_in)
        self._drop_router_params()
        if trainable:
            self.router_weight = nn.Parameter(rw.clone())
            self.router_bias = nn.Parameter(rb)  # replaces the buffer of the same name
        else:
            self.router_bias = rb  # buffer

    def set_gate_calibration(self, scale: Tensor | None = None, bias: Tensor | None = None) -> None:
        """Calibrate this layer's router logits: z' = z * scale + bias, both (K,).

        Temperature scaling is scale = 1 / T_l, bias = 0; None resets to identity. The gates
        are softmax(z'), so the calibration acts exactly where the gates are formed (and the
        fast path folds it into the fused router rows: no extra op per token).
        """
        k = self.num_experts
        w = self.base_layer.weight
        s = torch.ones(k) if scale is None else scale.detach().reshape(k)
        b = torch.zeros(k) if bias is None else bias.detach().reshape(k)
        self.gate_scale = s.to(dtype=w.dtype, device=w.device).clone()
        self.gate_bias = b.to(dtype=w.dtype, device=w.device).clone()

    def _drop_router_params(self) -> None:
        if self.router_weight is not None:
            del self.router_weight
            del self.router_bias
            self.router_weight = None
            self.register_buffer("router_bias", None)

    def freeze_router(self) -> None:
        """Write trained router Parameters back into the fused lora_A_cat rows / bias buffer."""
        if self.router_weight is not None:
            rw, rb = self.router_weight.detach().clone(), self.router_bias.detach().clone()
            self.attach_router(rw, rb, trainable=False)

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """y = W0 x + (h_R * g[rank_to_expert]) B_cat^T with h = x [A_cat; W_r]^T (Eq. MoCaE).

        x (..., d_in), any T (prefill or a one-token KV-cache decode step). Gates: the layer
        router's softmax(logits / T) combined with prefs (token mode), else `state.gates`, else
        prefs against a uniform router; with none of these the experts are off. Inference
        (no grad, no autocast, frozen router) takes `_fast_forward`; the rest keeps the graph.
        """
        if (
            torch.is_grad_enabled()
            or self.router_weight is not None
            or torch.is_autocast_enabled(x.device.type)
        ):
            return self._graph_forward(x)
        return self._fast_forward(x)

    def _graph_forward(self, x: Tensor) -> Tensor:
        """Differentiable reference path (router / LM-loss training, autocast)."""
        st = self.state
        y = self.base_layer(x)  # (..., d_out)
        R, K = self.total_rank, self.num_experts
        token_mode = self.has_router and st.gates is None
        if R == 0 or (st.gates is None and st.prefs is None and not self.has_router):
            return y  # experts off
        a = self.lora_A_cat
        if self.router_weight is not None:
            a = torch.cat([a[:R], self.router_weight.to(a.dtype)], 0)
        h = F.linear(x, a.to(x.dtype))  # (..., R [+ K])
        if token_mode:
            logits = h[..., R:] + self.router_bias.to(x.dtype)  # (..., K) raw router logits
            logits = logits * self.gate_scale.to(x.dtype) + self.gate_bias.to(x.dtype)  # calibrated
            if st.record:
                st.records.append(logits if st.record_grad else logits.detach())
            probs = torch.softmax(logits.float() / st.temperature, dim=-1).to(x.dtype)
            gates = combine_gates(probs, st.prefs, st.pref_mode, st.top_k)  # (..., K)
        elif st.gates is not None:
            gates = broadcast_gates(st.gates.to(device=x.device, dtype=x.dtype), x.dim())
        else:  # preferences but no router: combine with uniform router probs
            pi = st.prefs.to(device=x.device, dtype=x.dtype)
            uniform = torch.full_like(pi, 1.0 / K)
            gates = broadcast_gates(combine_gates(uniform, pi, st.pref_mode, st.top_k), x.dim())
        assert gates.shape[-1] == K, f"gates last dim {gates.shape[-1]} != {K} experts"
        g_r = gates[..., self.rank_to_expert]  # (..., R), gate of each rank row's expert
        return y + F.linear(h[..., :R] * g_r, self.lora_B_cat.to(x.dtype))  # (..., d_out)

    def naive_forward(self, x: Tensor, gates: Tensor) -> Tensor:
        """Reference: base(x) + sum_k g_k s_k B_k A_k x as an explicit loop (tests only)."""
        g = broadcast_gates(gates.to(x.dtype), x.dim())
        y = self.base_layer(x)
        for k, name in enumerate(self.expert_names):
            a, b, s = self.expert_factors(name)
            y = y + g[..., k : k + 1] * s * ((x @ a.T.to(x.dtype)) @ b.T.to(x.dtype))
        return y

    # ----------------------------------------------------------------- accessors
    def expert_span(self, name: str) -> slice:
        """Rows of lora_A_cat / columns of lora_B_cat that hold expert `name`."""
        return self._span(name)

    def _span(self, name: str) -> slice:
        k = self.expert_names.index(name)
        start = sum(self._ranks[:k])
        return slice(start, start + self._ranks[k])

    def expert_factors(self, name: str) -> tuple[Tensor, Tensor, float]:
        """(A_k (r, d_in), B_k (d_out, r), s_k) with the scale taken back out of B."""
        sp = self._span(name)
        s = float(self.expert_scales[self.expert_names.index(name)])
        b = self.lora_B_cat[:, sp]
        return self.lora_A_cat[sp], (b / s if s != 0 else torch.zeros_like(b)), s

    def all_expert_factors(self) -> dict[str, tuple[Tensor, Tensor, float]]:
        """name -> (A_k, B_k, s_k) for every expert, e.g. for `prior.task_vector_prior`."""
        return {n: self.expert_factors(n) for n in self.expert_names}

    def expert_delta(self, name: str) -> Tensor:
        """Task vector of one expert in this layer, s_k B_k A_k (d_out, d_in)."""
        sp = self._span(name)
        return self.lora_B_cat[:, sp] @ self.lora_A_cat[sp]

    def gated_factors(self, gates: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """A (R, d_in), B diag(g_r) (d_out, R) and g_r (R,), float32, for fixed gates (K,).

        Every fold of W0 + sum_k g_k s_k B_k A_k starts here (merged_delta, folded decoding in
        model/folding.py, the PEFT export), so the gate-to-rank expansion is written once.
        """
        assert gates.shape[-1:] == (self.num_experts,) and gates.numel() == self.num_experts, (
            f"gates {tuple(gates.shape)} for {self.num_experts} experts"
        )
        R = self.total_rank
        g_r = gates.reshape(-1).to(self.lora_B_cat.device, torch.float32)[self.rank_to_expert]
        return self.lora_A_cat[:R].float(), self.lora_B_cat.float() * g_r, g_r

    def merged_delta(self, gates: Tensor) -> Tensor:
        """sum_k g_k s_k B_k A_k (d_out, d_in) for fixed gates (K,): exact weight merge."""
        a, b_g, _ = self.gated_factors(gates)
        return (b_g @ a).to(self.lora_B_cat.dtype)  # (d_out, d_in)

    def extra_repr(self) -> str:
        return (
            f"in={self.base_layer.in_features}, out={self.base_layer.out_features}, "
            f"experts={self.expert_names}, ranks={self._ranks}, router={self.has_router}"
        )
