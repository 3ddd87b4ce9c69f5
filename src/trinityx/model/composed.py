"""TrinityXModel: a frozen HF causal LM with the HHH LoRA experts composed inside it (MoCaE).

Every target linear computes y = W0 x + sum_k g_k s_k B_k A_k x (Eq. MoCaE). The gates g come
from per-layer token routers (routing="token", every token and layer routes itself, KV cache
included), from one SequenceRouter decision per prompt (routing="sequence", pooled hidden
states of an experts-off pass), or from the user alone (routing="none"). User HHH weights pi
enter through `combine_gates` (Eq. gates). Save -> load is bit-exact and refuses a backbone
whose weights differ from the one the artifact was built on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from trinityx.config import BackboneConfig
from trinityx.data.formatting import prompt_string
from trinityx.model.artifacts import (
    ArtifactError,
    atomic_dir,
    read_manifest,
    write_json,
    write_manifest,
)
from trinityx.model.backbone import Backbone, load_backbone
from trinityx.model.inject import (
    ExpertWeights,
    expert_weights_hash_check,
    inject_mocae,
    load_peft_adapter,
    write_peft_adapter,
)
from trinityx.nn.calibration import apply_temperature, apply_vector_scaling
from trinityx.nn.mocae import RoutingState
from trinityx.nn.prior import task_vector_prior
from trinityx.nn.router import SequenceRouter, TokenRouter, combine_gates, masked_mean

ROUTING_MODES = ("token", "sequence", "none")
WeightSpec = Mapping[str, float] | Sequence[float] | Tensor | None


@dataclass
class GenerationResult:
    texts: list[str]  # decoded new tokens, special tokens removed
    sequences: Tensor  # (B, T_prompt + T_new): left-padded prompt, then the new tokens
    prompt_length: int  # T_prompt (padded), so sequences[:, prompt_length:] are the new tokens
    routing: list[dict] | None  # per request: weights, gates used, calibrated router probs


def _position_ids(mask: Tensor) -> Tensor:
    """Positions that skip left padding, as `generate` computes them."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T)


def _pool_records(records: list[Tensor], mask: Tensor | None) -> Tensor:
    """Sequence logits from recorded per-layer token logits: mean_l masked_mean_t z_l (B, K)."""
    z = torch.stack([r.float() for r in records])  # (L, B, T, K)
    return torch.stack([masked_mean(zl, mask) for zl in z]).mean(0)  # (B, K)


class TrinityXModel:
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
        self.temperature = 1.0
        self.vector_scaling: tuple[Tensor, Tensor] | None = None  # (w (K,), b (K,))
        self.prior = torch.full((len(experts),), 1.0 / len(experts))
        self.metadata: dict = {}

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

    @torch.no_grad()
    def pooled_features(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Masked mean of hidden_states[pool_layer] with experts off (B, d) float32; cacheable."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        with self.experts_off():
            out = self.model.base_model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=_position_ids(mask).to(self.device),
                output_hidden_states=True,
            )
        h = out.hidden_states[self.pool_layer].float()  # (B, T, d)
        return masked_mean(h, mask.to(h.device))  # (B, d)

    def sequence_logits_from_features(self, feats: Tensor) -> Tensor:
        """SequenceRouter logits (B, K) from `pooled_features` output (grads reach the router)."""
        r = self._need_router("sequence")
        return r.mlp(r.norm(feats.to(self.device, r.norm.weight.dtype)))  # (B, K)

    def route_logits(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, train: bool = False
    ) -> Tensor:
        """Uncalibrated sequence-level router logits (B, K).

        sequence: the SequenceRouter on pooled experts-off hidden states. token: one forward
        with the routers routing, then mean over layers of the masked token-mean of each
        layer's logits. train=True keeps the graph to the router parameters.
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
            self._routing(record=True, record_grad=train, temperature=self.temperature) as st,
        ):
            self.model.base_model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=_position_ids(mask),
            )
            records = list(st.records)
        return _pool_records(records, mask)

    def calibrate(self, logits: Tensor) -> Tensor:
        """Calibrated sequence-level logits: vector scaling w (.) z + b if fitted, else z / T.

        Per-token gates inside the layers (token mode) use the temperature only: RoutingState
        carries no per-expert scale/bias.
        """
        if self.vector_scaling is not None:
            return apply_vector_scaling(logits, *self.vector_scaling)
        return apply_temperature(logits, self.temperature)

    def router_probs(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Calibrated sequence-level routing distribution softmax(calibrate(z)) (B, K)."""
        return torch.softmax(
            self.calibrate(self.route_logits(input_ids, attention_mask)).float(), -1
        )

    def resolve_weights(
        self, hhh: WeightSpec, allow_negative: bool = False, mode: str = "multiply"
    ) -> Tensor | None:
        """User HHH weights pi as a (K,) float tensor in expert order (None: router alone)."""
        names = self.expert_names
        if mode not in ("multiply", "fixed"):
            raise ValueError(f"weight_mode must be 'multiply' or 'fixed', got {mode!r}")
        if hhh is None:
            if mode == "fixed":
                raise ValueError(
                    f"weight_mode='fixed' needs hhh_weights, e.g. {{{names[0]!r}: 1.0}}"
                )
            return None
        if isinstance(hhh, Mapping):
            unknown = sorted(set(hhh) - set(names))
            if unknown:
                raise ValueError(
                    f"unknown HHH dimension(s) {unknown}; this model's experts are {names}"
                )
            vals = [float(hhh.get(n, 0.0)) for n in names]
        else:
            vals = [float(v) for v in (hhh.tolist() if isinstance(hhh, Tensor) else hhh)]
            if len(vals) != len(names):
                raise ValueError(
                    f"got {len(vals)} weights for {len(names)} experts {names} (in order)"
                )
        w = torch.tensor(vals, dtype=torch.float32)
        if not torch.isfinite(w).all():
            raise ValueError(f"hhh weights must be finite numbers, got {vals}")
        if (w < 0).any() and not allow_negative:
            neg = [n for n, v in zip(names, vals, strict=True) if v < 0]
            raise ValueError(
                f"negative weight for {neg}: a negative weight subtracts that expert's "
                "task vector (task-vector negation), which must be requested "
                "explicitly with allow_negative=True"
            )
        if (w == 0).all():
            raise ValueError("all hhh weights are zero: give at least one expert a non-zero weight")
        return w

    def _batch_prefs(self, spec, B: int, mode: str, allow_negative: bool) -> Tensor | None:
        """One spec for all rows, or a list with one spec per request -> (B, K) or None."""
        if isinstance(spec, Tensor) and spec.dim() == 2:
            spec = list(spec)  # (B, K) tensor: one row per request
        per_row = (
            isinstance(spec, (list, tuple))
            and len(spec) > 0
            and all(s is None or isinstance(s, (Mapping, list, tuple, Tensor)) for s in spec)
        )
        if not per_row:
            w = self.resolve_weights(spec, allow_negative, mode)
            return None if w is None else w.expand(B, -1).to(self.device)
        if len(spec) != B:
            raise ValueError(
                f"hhh_weights has {len(spec)} entries for {B} prompts; give one per "
                "prompt or a single spec for all"
            )
        rows = [self.resolve_weights(s, allow_negative, mode) for s in spec]
        if all(r is None for r in rows):
            return None
        ones = torch.ones(len(self.expert_names))  # "router alone" for a None row in multiply mode
        return torch.stack([ones if r is None else r for r in rows]).to(self.device)  # (B, K)

    def _need_router(self, kind: str):
        if self.routing != kind:
            raise ValueError(f"this model routes by {self.routing!r}, not {kind!r}")
        return self.sequence_router

    # ------------------------------------------------------------------ generation
    def encode(self, prompts: Sequence[str] | Sequence[Sequence[dict]]) -> tuple[Tensor, Tensor]:
        """Chat-templated, left-padded input_ids (B, T) and attention_mask (B, T)."""
        texts = [
            prompt_string(
                self.tokenizer, [{"role": "user", "content": p}] if isinstance(p, str) else p
            )
            for p in prompts
        ]
        old, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        try:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = old
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _prepare(
        self, ids, mask, hhh_weights, weight_mode, allow_negative, top_k, n=1, record=False
    ):
        """RoutingState fields for one batch, plus (prefs, fixed gates, calibrated probs).

        fixed gates: weight_mode "fixed" (gates = pi), sequence routing (router probs (x) pi,
        Eq. gates) and routing "none" (uniform (x) pi). Token routing leaves gates None and
        hands pi / temperature / top_k to the layer routers. Rows are repeated n times for
        HF's beam / num_return_sequences expansion.
        """
        B, K = ids.shape[0], len(self.expert_names)
        prefs = self._batch_prefs(hhh_weights, B, weight_mode, allow_negative)  # (B, K) | None
        probs = gates = None
        if weight_mode == "fixed":
            gates = combine_gates(prefs, prefs, "fixed", top_k)
        elif self.routing != "token":
            probs = self.router_probs(ids, mask) if self.routing == "sequence" else None
            base = torch.full((B, K), 1 / K, device=self.device) if probs is None else probs
            gates = combine_gates(base, prefs, weight_mode, top_k)  # (B, K)
        if gates is not None:
            return {"gates": gates.repeat_interleave(n, 0)}, prefs, gates, probs
        fields = {
            "prefs": None if prefs is None else prefs.repeat_interleave(n, 0),
            "pref_mode": weight_mode,
            "top_k": top_k,
            "temperature": self.temperature,
            "record": record,
        }
        return fields, prefs, None, None

    def logits(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        hhh_weights=None,
        weight_mode: str = "multiply",
        allow_negative: bool = False,
        top_k: int | None = None,
        gates: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced logits (B, T, V) under the same composition rules as `generate`.

        gates (K,) / (B, K) / (B, T, K) overrides everything (e.g. sequence-mode gates computed
        from the prompt only, when scoring prompt + response). Not wrapped in no_grad, so the
        router LM loss can backpropagate; wrap it yourself for inference.
        """
        ids = input_ids.to(self.device)
        mask = (torch.ones_like(ids) if attention_mask is None else attention_mask).to(self.device)
        if gates is not None:
            fields = {"gates": gates.to(self.device)}
        else:
            fields = self._prepare(ids, mask, hhh_weights, weight_mode, allow_negative, top_k)[0]
        with self._routing(**fields):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask))
        return out.logits

    @torch.no_grad()
    def generate(
        self,
        prompts=None,
        *,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        hhh_weights=None,
        weight_mode: str = "multiply",
        allow_negative: bool = False,
        top_k: int | None = None,
        max_new_tokens: int = 64,
        return_routing: bool = True,
        **hf_generate_kwargs,
    ) -> GenerationResult:
        """Batched generation with per-request HHH weights (one spec, or a list per prompt).

        sequence: gates = combine_gates(calibrated router probs, pi) once per prompt, fixed for
        the whole decode. token: every layer routes every token (prompt and decode steps).
        weight_mode="fixed": gates = pi, no router. Routing state is reset afterwards.
        """
        if (prompts is None) == (input_ids is None):
            raise ValueError("give either prompts or input_ids (left-padded), not both / neither")
        if prompts is not None:
            ids, mask = self.encode(prompts)
        else:
            ids = input_ids.to(self.device)
            mask = (torch.ones_like(ids) if attention_mask is None else attention_mask).to(
                self.device
            )
            if not bool(mask[:, -1].all()):
                raise ValueError("input_ids must be left-padded (attention_mask[:, -1] all 1)")
        B, T0 = ids.shape
        gc = self.model.generation_config
        n = max(
            hf_generate_kwargs.get("num_beams", gc.num_beams or 1),
            hf_generate_kwargs.get("num_return_sequences", gc.num_return_sequences or 1),
        )
        fields, prefs, gates, probs = self._prepare(
            ids, mask, hhh_weights, weight_mode, allow_negative, top_k, n, return_routing
        )
        tok = gates is None
        hf_generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        with self._routing(**fields) as st:
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                **hf_generate_kwargs,
            )
            records = list(st.records)
        seqs = out if isinstance(out, Tensor) else out.sequences
        texts = self.tokenizer.batch_decode(seqs[:, T0:], skip_special_tokens=True)
        routing = None
        if return_routing:
            if tok:
                gates, probs = self._token_summary(
                    records, mask, prefs, weight_mode, top_k, seqs[:, T0:], n, hf_generate_kwargs
                )
            routing = [self._report(prefs, gates, probs, i, weight_mode) for i in range(B)]
        return GenerationResult(texts, seqs, T0, routing)

    def _token_summary(self, records, mask, prefs, mode, top_k, new, n, kw):
        """Token-mode report: gates (B, K) and calibrated sequence-level router probs (B, K).

        gates: mean over routed layers and over the positions that produced a new token (the
        last prompt position, then each decode step), stopping at a row's EOS. probs: pooled
        from this request's own prefill records (no extra forward), i.e. what the routers saw
        of the prompt under the request's weights. With beams / several return sequences the
        expanded rows of a request are averaged without EOS masking.
        """
        L = len(self.layers)
        steps = [records[i : i + L] for i in range(0, len(records), L)]
        probs = torch.softmax(self.calibrate(_pool_records([r[::n] for r in steps[0]], mask)), -1)
        pi = None if prefs is None else prefs.repeat_interleave(n, 0)
        per_step = []
        for step in steps:
            z = torch.stack([r[:, -1].float() for r in step], 1)  # (B*n, L, K) at the new token
            p = torch.softmax(z / self.temperature, -1)
            per_step.append(combine_gates(p, pi, mode, top_k).mean(1))  # (B*n, K)
        g = torch.stack(per_step, 1)  # (B*n, S, K)
        valid = torch.ones(g.shape[:2], device=g.device)  # (B*n, S)
        eos = kw.get("eos_token_id", self.model.generation_config.eos_token_id)
        if n == 1 and eos is not None and new.shape[1] >= g.shape[1]:
            done = torch.isin(new[:, : g.shape[1]], torch.tensor(eos, device=new.device).view(-1))
            valid = (done.long().cumsum(1) - done.long() == 0).float()  # up to and incl. EOS
        g = (g * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp_min(1)  # (B*n, K)
        return g.view(-1, n, g.shape[-1]).mean(1), probs  # (B, K), (B, K)

    def _report(self, prefs, gates, probs, i: int, mode: str) -> dict:
        def named(t):
            return None if t is None else dict(zip(self.expert_names, t[i].tolist(), strict=True))

        return {
            "routing": self.routing,
            "weight_mode": mode,
            "weights": named(prefs),
            "gates": named(gates),
            "router_probs": named(probs),
        }

    @torch.no_grad()
    def routing_trace(
        self, prompt, hhh_weights=None, weight_mode: str = "multiply", allow_negative: bool = False
    ) -> Tensor:
        """Gates for plots: token mode (L_layers, T, K) per routed layer (call order) and token;
        sequence mode (K,) once for the prompt."""
        ids, mask = self.encode([prompt])
        pi = self._batch_prefs(hhh_weights, 1, weight_mode, allow_negative)
        if self.routing == "sequence":
            return combine_gates(self.router_probs(ids, mask), pi, weight_mode)[0]  # (K,)
        self._need_router("token")
        with self._routing(
            record=True, prefs=pi, pref_mode=weight_mode, temperature=self.temperature
        ) as st:
            self.model.base_model(input_ids=ids, attention_mask=mask)
            z = torch.stack([r[0].float() for r in st.records])  # (L, T, K)
        return combine_gates(torch.softmax(z / self.temperature, -1), pi, weight_mode)

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

    # ------------------------------------------------------------------ save / load
    def _router_tensors(self) -> dict[str, Tensor]:
        if self.routing == "sequence":
            return {k: v.detach().clone() for k, v in self.sequence_router.state_dict().items()}
        out = {}
        for name, layer in self.layers.items():
            w = (
                layer.router_weight
                if layer.router_weight is not None
                else layer.lora_A_cat[layer.total_rank :]
            )
            out[f"{name}.weight"], out[f"{name}.bias"] = (
                w.detach().clone(),
                layer.router_bias.detach().clone(),
            )
        return out

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the composed artifact atomically; layout in `from_pretrained`."""
        with atomic_dir(folder) as tmp:
            for name, ew in self.experts.items():
                write_peft_adapter(tmp / "experts" / name, ew.config, ew.tensors)
            if self.routing != "none":
                save_file(
                    {k: v.contiguous().cpu() for k, v in self._router_tensors().items()},
                    str(tmp / "router.safetensors"),
                    metadata={"format": "pt"},
                )
            vs = self.vector_scaling
            write_json(
                tmp / "calibration.json",
                {
                    "temperature": self.temperature,
                    "vector_scaling": None
                    if vs is None
                    else {"w": vs[0].tolist(), "b": vs[1].tolist()},
                },
            )
            write_manifest(
                tmp,
                "composed",
                backbone=self.backbone.name,
                backbone_source=self.backbone.source,
                backbone_weights_hash=self.backbone.weights_hash,
                experts=[ew.summary() for ew in self.experts.values()],
                routing=self.routing,
                pool_layer=self.pool_layer,
                router_hidden=self.router_hidden,
                temperature=self.temperature,
                prior=self.prior.tolist(),
                metadata=self.metadata,
            )
        return Path(folder)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        backbone_cfg: BackboneConfig | None = None,
        *,
        backbone: Backbone | None = None,
    ) -> TrinityXModel:
        """Load a composed artifact: folder/manifest.json, experts/<name>/ (PEFT adapters),
        router.safetensors, calibration.json. The backbone (from the manifest, `backbone_cfg` or
        an already loaded, un-injected `backbone`) must have the recorded weights hash."""
        folder = Path(folder)
        man = read_manifest(folder, "composed")
        if backbone is None:
            backbone = load_backbone(backbone_cfg or BackboneConfig(name=man["backbone"]))
        if backbone.weights_hash != man["backbone_weights_hash"]:
            raise ArtifactError(
                f"{folder} was built for backbone {man['backbone']!r} (from {man.get('backbone_source')}, "
                f"weights sha256 {man['backbone_weights_hash'][:12]}) but the loaded backbone "
                f"{backbone.name!r} has {backbone.weights_hash[:12]}; load it with "
                f"backbone.name={man['backbone']!r}"
            )
        experts = {
            e["name"]: load_peft_adapter(folder / "experts" / e["name"], name=e["name"])
            for e in man["experts"]
        }
        self = cls(
            backbone, experts, man["routing"], man["pool_layer"], man.get("router_hidden", 256)
        )
        if self.routing != "none":
            path = folder / "router.safetensors"
            if not path.is_file():
                raise ArtifactError(f"{path} is missing; the artifact is incomplete, rebuild it")
            sd = load_file(str(path), device=str(self.device))
            if self.routing == "sequence":
                self.sequence_router.load_state_dict(sd)
            else:
                missing = [n for n in self.layers if f"{n}.weight" not in sd]
                if missing:
                    raise ArtifactError(f"{path} has no router for {missing[:3]}...; rebuild it")
                for n, layer in self.layers.items():
                    layer.attach_router(sd[f"{n}.weight"], sd[f"{n}.bias"])
        cal_path = folder / "calibration.json"
        if not cal_path.is_file():
            raise ArtifactError(f"{cal_path} is missing; the artifact is incomplete, rebuild it")
        cal = json.loads(cal_path.read_text())
        self.temperature = float(cal["temperature"])
        if cal.get("vector_scaling"):
            vs = cal["vector_scaling"]
            self.vector_scaling = (torch.tensor(vs["w"]), torch.tensor(vs["b"]))
        self.prior = torch.tensor(man["prior"])
        self.metadata = dict(man.get("metadata") or {})
        return self
