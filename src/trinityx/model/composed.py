"""TrinityXModel: a frozen HF causal LM with the HHH LoRA experts composed inside it (MoCaE).

Every target linear computes y = W0 x + sum_k g_k s_k B_k A_k x (Eq. MoCaE). The gates g come
from per-layer token routers (routing="token", every token and layer routes itself, KV cache
included), from one SequenceRouter decision per prompt (routing="sequence", pooled hidden
states of an experts-off pass that stops at `pool_layer`), or from the user alone
(routing="none"). User HHH weights pi enter through `combine_gates` (Eq. gates).

Lives here: the class core (build, routing, HHH weights, router training). Generation is in
model/generation.py and save/load in model/composed_io.py (mixed in); `GenerationResult` is
re-exported so `from trinityx.model.composed import TrinityXModel, GenerationResult` works.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from trinityx.model.backbone import Backbone
from trinityx.model.composed_io import ComposedIOMixin, share_adapter_storage
from trinityx.model.generation import (
    GenerationMixin,
    GenerationResult,
    pool_records,
    position_ids,
)
from trinityx.model.hhh_weights import WeightSpec, batch_prefs, resolve_weights
from trinityx.model.inject import (
    ExpertWeights,
    expert_weights_hash_check,
    inject_mocae,
    load_peft_adapter,
)
from trinityx.model.presets import Preset
from trinityx.nn.calibration import apply_temperature, apply_vector_scaling
from trinityx.nn.mocae import RoutingState
from trinityx.nn.prior import task_vector_prior
from trinityx.nn.router import SequenceRouter, TokenRouter, masked_mean

__all__ = ["ROUTING_MODES", "GenerationResult", "TrinityXModel", "WeightSpec"]

ROUTING_MODES = ("token", "sequence", "none")


class TrinityXModel(GenerationMixin, ComposedIOMixin):
    """The composed model; build it with `build` or load it with `from_pretrained`."""

    def __init__(
        self,
        backbone: Backbone,
        experts: dict[str, ExpertWeights],
        routing: str,
        pool_layer: int | None = None,
        router_hidden: int = 256,
    ) -> None:
        if routing not in ROUTING_MODES:
            raise ValueError(f"routing must be one of {ROUTING_MODES}, got {routing!r}")
        self.backbone = backbone
        self.model, self.tokenizer = backbone.model, backbone.tokenizer
        self.experts = dict(experts)
        self.expert_names = list(experts)
        self.routing = routing
        self.state = RoutingState()
        self.layers = inject_mocae(self.model, self.experts, self.state)
        self.experts = share_adapter_storage(self.experts, self.layers)  # adapters held once
        n_layers = self.model.config.num_hidden_layers
        self.pool_layer = n_layers // 2 if pool_layer is None else int(pool_layer)
        if not 0 <= self.pool_layer <= n_layers:
            raise ValueError(f"pool_layer={pool_layer} outside 0..{n_layers} (hidden_states index)")
        self.router_hidden = router_hidden
        self.sequence_router: SequenceRouter | None = None
        if routing == "sequence":
            d = self.model.config.hidden_size
            with torch.random.fork_rng(devices=[]):  # weights are overwritten; keep the user's RNG
                self.sequence_router = SequenceRouter(d, len(experts), router_hidden)
            self.sequence_router.to(self.device).requires_grad_(False).eval()
        # Calibration of the sequence-level decision softmax(z / T) or softmax(w z + b): the
        # SequenceRouter's logits (sequence routing; they are its gates) or the layers' pooled
        # logits (token routing, reported as router_probs). Token routing's gates are
        # calibrated inside every layer instead (`set_layer_calibration`).
        self.temperature = 1.0
        self.vector_scaling: tuple[Tensor, Tensor] | None = None  # (w (K,), b (K,))
        self.top_k: int | None = None  # default gate sparsity (1 = the paper's top-1 routing)
        self.prior = torch.full((len(experts),), 1.0 / len(experts))
        self.metadata: dict = {}
        self.presets: dict[str, Preset] = {}  # named compositions (model/presets.py)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @classmethod
    def build(
        cls,
        backbone: Backbone,
        experts: Mapping[str, str | Path | ExpertWeights],
        routing: str = "token",
        pool_layer: int | None = None,
        seed: int = 0,
        router_init_std: float = 1e-3,
        router_hidden: int = 256,
    ) -> TrinityXModel:
        """Inject the experts (name -> expert artifact / PEFT folder) with fresh seeded routers.

        Token routers start with std `router_init_std` and zero bias, i.e. near-uniform gates.
        """
        loaded = {
            n: e if isinstance(e, ExpertWeights) else load_peft_adapter(e, name=n)
            for n, e in experts.items()
        }
        for n, ew in loaded.items():
            dim = (ew.manifest or {}).get("dimension")
            if dim is not None and dim != n:
                raise ValueError(
                    f"expert {n!r} points at {ew.folder.parent}, whose manifest says "
                    f"dimension {dim!r}; swap the folders or rename the key"
                )
            expert_weights_hash_check(ew, backbone.weights_hash, backbone.name)
        self = cls(backbone, loaded, routing, pool_layer, router_hidden)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if routing == "token":
                for layer in self.layers.values():
                    r = TokenRouter(layer.base_layer.in_features, len(loaded), router_init_std)
                    layer.attach_router(r.weight, r.bias)
            elif routing == "sequence":
                fresh = SequenceRouter(self.model.config.hidden_size, len(loaded), router_hidden)
                self.sequence_router.load_state_dict(fresh.state_dict())
        layers = [layer.all_expert_factors() for layer in self.layers.values()]
        self.prior = task_vector_prior(layers, "mean", names=self.expert_names)
        return self

    # ------------------------------------------------------------------ routing
    @contextlib.contextmanager
    def _routing(self, **fields) -> Iterator[RoutingState]:
        """Set routing inputs for one call and always reset them (no state leaks across calls)."""
        self.state.reset()
        try:
            for k, v in fields.items():
                setattr(self.state, k, v)
            yield self.state
        finally:
            self.state.reset()

    @contextlib.contextmanager
    def experts_off(self) -> Iterator[None]:
        """Run the plain backbone: exact base outputs, previous routing inputs restored after.

        Without layer routers, gates=None and prefs=None take MoCaELinear's early return (no LoRA
        matmuls at all). With token routers attached that would *route*, so gates are set to
        zeros instead: the routers are bypassed and the expert term is exactly +0.
        """
        saved = {f.name: getattr(self.state, f.name) for f in dataclasses.fields(self.state)}
        token = any(layer.has_router for layer in self.layers.values())
        self.state.gates = (
            torch.zeros(len(self.expert_names), device=self.device) if token else None
        )
        self.state.prefs, self.state.record = None, False
        try:
            yield
        finally:
            for k, v in saved.items():
                setattr(self.state, k, v)

    @contextlib.contextmanager
    def _stop_at_pool_layer(self) -> Iterator[bool]:
        """Temporarily cut the decoder stack after `pool_layer` blocks (and drop the final norm).

        The pooling pass then costs pool_layer / L of a forward and its last_hidden_state is
        exactly hidden_states[pool_layer]. Yields False (nothing cut) for the last layer, whose
        hidden_states entry is post-norm, or for a base model without `.layers` / `.norm`.
        """
        base = self.model.base_model
        layers, norm = getattr(base, "layers", None), getattr(base, "norm", None)
        cut = (
            isinstance(layers, nn.ModuleList)
            and isinstance(norm, nn.Module)
            and self.pool_layer < len(layers)
        )
        if not cut:
            yield False
            return
        base.layers, base.norm = nn.ModuleList(layers[: self.pool_layer]), nn.Identity()
        try:
            yield True
        finally:
            base.layers, base.norm = layers, norm

    @torch.no_grad()
    def pooled_features(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Masked mean of hidden_states[pool_layer] with experts off (B, d) float32; cacheable.

        Runs only the first pool_layer decoder blocks (no later blocks, no LM head, no cache).
        """
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        with self.experts_off(), self._stop_at_pool_layer() as cut:
            out = self.model.base_model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=position_ids(mask).to(self.device),
                output_hidden_states=not cut,
                use_cache=False,
            )
        h = out.last_hidden_state if cut else out.hidden_states[self.pool_layer]
        h = h.float()  # (B, T, d)
        return masked_mean(h, mask.to(h.device))  # (B, d)

    def sequence_logits_from_features(self, feats: Tensor) -> Tensor:
        """SequenceRouter logits (B, K) from `pooled_features` output (grads reach the router)."""
        r = self._need_router("sequence")
        return r.mlp(r.norm(feats.to(self.device, r.norm.weight.dtype)))  # (B, K)

    def route_logits(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, train: bool = False
    ) -> Tensor:
        """Sequence-level router logits (B, K), before the decision's calibration.

        sequence: the SequenceRouter on pooled experts-off hidden states. token: one forward
        with the routers routing, then mean over layers of the masked token-mean of each
        layer's logits (after each layer's own gate calibration; raw while that is the
        identity, as in training). train=True keeps the graph to the router parameters.
        """
        if self.routing == "sequence":
            return self.sequence_logits_from_features(
                self.pooled_features(input_ids, attention_mask)
            )
        self._need_router("token")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask = mask.to(self.device)
        grad = torch.enable_grad() if train else torch.no_grad()
        with (
            grad,
            self._routing(record=True, record_grad=train) as st,
        ):
            self.model.base_model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=position_ids(mask),
            )
            records = list(st.records)
        return pool_records(records, mask)

    def calibrate(self, logits: Tensor) -> Tensor:
        """Calibrated sequence-level logits: vector scaling w (.) z + b if fitted, else z / T."""
        if self.vector_scaling is not None:
            return apply_vector_scaling(logits, *self.vector_scaling)
        return apply_temperature(logits, self.temperature)

    def router_probs(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The calibrated sequence-level routing decision softmax(calibrate(z)) (B, K).

        sequence: z from the SequenceRouter (these are the gates). token: z pooled over the
        layers' (per-layer calibrated) router logits and the prompt's real tokens.
        """
        return torch.softmax(
            self.calibrate(self.route_logits(input_ids, attention_mask)).float(), -1
        )

    @torch.no_grad()
    def token_records(
        self, input_ids: Tensor, attention_mask: Tensor | None = None
    ) -> list[Tensor]:
        """Token routing: each routed layer's calibrated router logits [(B, T, K)] (one pass)."""
        self._need_router("token")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask = mask.to(self.device)
        with self._routing(record=True) as st:
            self.model.base_model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=position_ids(mask),
            )
            return list(st.records)

    def layer_calibration(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Token routing: layer name -> (gate_scale (K,), gate_bias (K,)), z' = z * s + c."""
        return {n: (la.gate_scale.clone(), la.gate_bias.clone()) for n, la in self.layers.items()}

    def set_layer_calibration(
        self, calibration: Mapping[str, tuple[Tensor, Tensor]] | None = None
    ) -> None:
        """Set each layer's gate calibration (None: identity, i.e. the raw routers)."""
        for n, layer in self.layers.items():
            if calibration is None:
                layer.set_gate_calibration()
            else:
                layer.set_gate_calibration(*calibration[n])

    def reset_calibration(self) -> None:
        """Back to the uncalibrated routers: T = 1, no vector scaling, identity in every layer."""
        self.temperature, self.vector_scaling = 1.0, None
        self.set_layer_calibration(None)

    def resolve_weights(
        self, hhh: WeightSpec, allow_negative: bool = False, mode: str = "multiply"
    ) -> Tensor | None:
        """User HHH weights pi as a (K,) float tensor in expert order (None: router alone)."""
        return resolve_weights(self.expert_names, hhh, allow_negative, mode)

    def _batch_prefs(self, spec, B: int, mode: str, allow_negative: bool) -> Tensor | None:
        """One spec for all rows, or a list with one spec per request -> (B, K) or None."""
        return batch_prefs(self.expert_names, spec, B, mode, allow_negative, self.device)

    def _need_router(self, kind: str):
        if self.routing != kind:
            raise ValueError(f"this model routes by {self.routing!r}, not {kind!r}")
        return self.sequence_router

    # ------------------------------------------------------------------ router training
    def router_parameters(self) -> list[torch.nn.Parameter]:
        """Make the routers trainable and return their parameters (nothing else trains)."""
        if self.routing == "token":
            params = []
            for layer in self.layers.values():
                if layer.router_weight is None:
                    R = layer.total_rank
                    layer.attach_router(
                        layer.lora_A_cat[R:].clone(), layer.router_bias.clone(), trainable=True
                    )
                params += [layer.router_weight, layer.router_bias]
            return params
        return list(self._need_router("sequence").requires_grad_(True).parameters())

    def freeze_routers(self) -> None:
        """Fuse trained token routers back under lora_A (fast path) / freeze the SequenceRouter."""
        for layer in self.layers.values():
            layer.freeze_router()
        if self.sequence_router is not None:
            self.sequence_router.requires_grad_(False).eval()
