"""Inference on a TrinityXModel: chat encoding, teacher-forced logits, batched generation, traces.

`GenerationMixin` is mixed into `TrinityXModel` (model/composed.py); it only talks to the model
through its routing surface (`_routing`, `_batch_prefs`, `router_probs`, `calibrate`, `layers`,
`state`), so generation rules live in one place: sequence / fixed gates are computed once per
prompt and held in `RoutingState.gates` for the whole decode (each MoCaE layer then folds them
into its B once per call, see `MoCaELinear`), token routing leaves every layer to route itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers.utils import ModelOutput

from trinityx.data.formatting import prompt_string
from trinityx.model.folding import FOLD_MIN_NEW_TOKENS, foldable, folded_view, shared_gates
from trinityx.model.presets import dial_prefs, resolve_preset
from trinityx.nn.router import combine_gates, masked_mean


@dataclass
class GenerationResult:
    texts: list[str]  # decoded new tokens, special tokens removed
    sequences: Tensor  # (B, T_prompt + T_new): left-padded prompt, then the new tokens
    prompt_length: int  # T_prompt (padded), so sequences[:, prompt_length:] are the new tokens
    routing: list[dict] | None  # per request: weights, gates used, calibrated router probs


def position_ids(mask: Tensor) -> Tensor:
    """Positions that skip left padding, as `generate` computes them."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T)


def pool_records(records: list[Tensor], mask: Tensor | None) -> Tensor:
    """Sequence logits from recorded per-layer token logits: mean_l masked_mean_t z_l (B, K)."""
    z = torch.stack([r.float() for r in records])  # (L, B, T, K)
    return torch.stack([masked_mean(zl, mask) for zl in z]).mean(0)  # (B, K)


class GenerationMixin:
    """encode / logits / generate / routing_trace for TrinityXModel (uses its tokenizer, model,
    device, expert_names, routing, temperature, state and routing helpers)."""

    def encode(self, prompts: Sequence[str] | Sequence[Sequence[dict]]) -> tuple[Tensor, Tensor]:
        """Chat-templated, left-padded input_ids (B, T) and attention_mask (B, T)."""
        texts = [
            prompt_string(
                self.tokenizer, [{"role": "user", "content": p}] if isinstance(p, str) else p
            )
            for p in prompts
        ]
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _prepare(
        self,
        ids,
        mask,
        hhh_weights,
        weight_mode,
        allow_negative,
        top_k,
        n=1,
        record=False,
        refusal_tau=None,
    ):
        """RoutingState fields for one batch, plus (prefs, fixed gates, calibrated probs).

        fixed gates: weight_mode "fixed" (gates = pi), sequence routing (router probs (x) pi,
        Eq. gates) and routing "none" (uniform (x) pi). Token routing leaves gates None and
        hands pi / temperature / top_k to the layer routers. Rows are repeated n times for
        HF's beam / num_return_sequences expansion.
        """
        B, K = ids.shape[0], len(self.expert_names)
        top_k = self.top_k if top_k is None else top_k
        prefs = self._batch_prefs(hhh_weights, B, weight_mode, allow_negative)  # (B, K) | None
        if refusal_tau is not None:  # model/presets.py: harmless alone where p(harmless) > tau
            prefs = dial_prefs(self.router_probs(ids, mask), prefs, self.expert_names, refusal_tau)
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
            "record": record,
        }
        return fields, prefs, None, None

    def logits(self, input_ids: Tensor, attention_mask: Tensor | None = None, **routing) -> Tensor:
        """Teacher-forced logits (B, T, V) under the same composition rules as `generate`.

        `routing` is `teacher_forced`'s: hhh_weights / weight_mode / allow_negative / top_k /
        refusal_tau, or gates (K,) / (B, K) / (B, T, K), which override everything (e.g.
        sequence-mode gates computed from the prompt only, when scoring prompt + response). Not
        wrapped in no_grad, so the router LM loss can backpropagate; wrap it yourself for
        inference.
        """
        return self.teacher_forced(input_ids, attention_mask, **routing).logits

    def teacher_forced(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        hhh_weights=None,
        weight_mode: str = "multiply",
        allow_negative: bool = False,
        top_k: int | None = None,
        gates: Tensor | None = None,
        refusal_tau: float | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        """The backbone's teacher-forced output under the composition rules of `logits`.

        labels (B, T; -100 = not scored): its ``.loss`` is Hugging Face's causal-LM loss (shifted
        inside the model), so callers never shift by hand; it needs the full (B, T, V) logits,
        so with a large vocabulary (Gemma 3: 262k, 1 MB a position) score through
        `output_hidden_states` and model/lm_head.py's budgeted chunks instead.
        logits_to_keep > 0: only the last that many positions (B, keep, V).
        output_hidden_states: `hidden_states[-1]` is the final post-norm state.
        """
        ids = input_ids.to(self.device)
        mask = (torch.ones_like(ids) if attention_mask is None else attention_mask).to(self.device)
        if gates is not None:
            fields = {"gates": gates.to(self.device)}
        else:
            fields = self._prepare(
                ids, mask, hhh_weights, weight_mode, allow_negative, top_k, refusal_tau=refusal_tau
            )[0]
        with self._routing(**fields):
            return self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=position_ids(mask),
                labels=None if labels is None else labels.to(self.device),
                logits_to_keep=logits_to_keep,
                output_hidden_states=output_hidden_states,
                use_cache=False,
            )

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
        fold: bool | None = None,
        preset: str | None = None,
        refusal_tau: float | None = None,
        **hf_generate_kwargs,
    ) -> GenerationResult:
        """Batched generation with per-request HHH weights (one spec, or a list per prompt).

        sequence: gates = combine_gates(calibrated router probs, pi) once per prompt, fixed for
        the whole decode. token: every layer routes every token (prompt and decode steps).
        weight_mode="fixed": gates = pi, no router. Routing state is reset afterwards.
        return_routing=False skips the per-request routing report (and, in token mode, the
        recording of router logits it is computed from). fold: when every row shares one gate
        vector, decode with g folded into W0 for this call (`model/folding.py`; same tokens,
        bare-backbone speed, W0 restored bit-exactly). None folds from FOLD_MIN_NEW_TOKENS new
        tokens on; True whenever the gates allow; False never. Rows with distinct gates and
        token routing always take the unfolded path. preset: a name from `self.presets`
        (model/presets.py) supplying weights, mode, top_k and the refusal dial; refusal_tau:
        harmless expert alone for prompts whose calibrated p(harmless) > tau.
        """
        if preset is not None:
            if hhh_weights is not None or refusal_tau is not None:
                raise ValueError("give either preset or hhh_weights / refusal_tau, not both")
            p = resolve_preset(self.presets, preset)
            hhh_weights, weight_mode, allow_negative = p.weights, p.mode, p.allow_negative
            top_k, refusal_tau = p.top_k if top_k is None else top_k, p.refusal_tau
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
            ids,
            mask,
            hhh_weights,
            weight_mode,
            allow_negative,
            top_k,
            n,
            return_routing,
            refusal_tau,
        )
        tok = gates is None
        hf_generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        g = self._fold_gates(fields.get("gates"), fold, max_new_tokens)
        view = (
            folded_view(self.model, self.layers, g) if g is not None else contextlib.nullcontext()
        )
        with self._routing(**fields) as st, view:
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

    def _fold_gates(self, gates: Tensor | None, fold: bool | None, new_tokens: int):
        """The (K,) gates to fold into W0 for this call, or None to decode unfolded."""
        if fold is False or (fold is None and new_tokens < FOLD_MIN_NEW_TOKENS):
            return None
        g = shared_gates(gates)
        return g if g is not None and foldable(self.layers) else None

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
        probs = torch.softmax(self.calibrate(pool_records([r[::n] for r in steps[0]], mask)), -1)
        pi = None if prefs is None else prefs.repeat_interleave(n, 0)
        per_step = []
        for step in steps:
            z = torch.stack([r[:, -1].float() for r in step], 1)  # (B*n, L, K) at the new token
            p = torch.softmax(z, -1)  # each layer's logits are calibrated where recorded
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
        with self._routing(record=True, prefs=pi, pref_mode=weight_mode) as st:
            self.model.base_model(input_ids=ids, attention_mask=mask)
            z = torch.stack([r[0].float() for r in st.records])  # (L, T, K)
        return combine_gates(torch.softmax(z, -1), pi, weight_mode)
