"""A composed TrinityX model behind the benchmarks' narrow interface (`model_api.EvalModel`).

What is TrinityX-specific in evaluating it: the fingerprint covers every expert, router and
calibration tensor (so the output cache never serves another model's answers), fixed user HHH
weights and the refusal dial are applied as generation applies them, and in sequence routing
the gates come from the context alone, which decides whether a few-shot primer may be shared
across questions (`primer_sharing`).
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from trinityx.eval.model_api import EvalModel, Messages, fingerprint_of


def trinityx_fingerprint(model, **settings) -> str:
    """Backbone weights hash + expert adapter tensors + router tensors + calibration + settings."""
    h = hashlib.sha256()
    for name, ew in model.experts.items():
        h.update(name.encode())
        for k, t in sorted(ew.tensors.items()):
            h.update(k.encode())
            h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    if model.routing != "none":
        # the same tensors save_pretrained writes to router.safetensors
        for k, t in sorted(model.router_tensors().items()):
            h.update(k.encode())
            h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return fingerprint_of(
        backbone=model.backbone.weights_hash,
        tensors=h.hexdigest(),
        routing=model.routing,
        pool_layer=model.pool_layer,
        calibration=model.calibration_state(),
        top_k=model.top_k,
        **settings,
    )


class TrinityXEvalModel(EvalModel):
    """A TrinityXModel under fixed user HHH weights (None: the router alone decides).

    What is routed for `loglikelihood`: in token mode every layer routes every token of
    context + continuation (as in generation, where the answer's tokens route themselves); in
    sequence mode the gates come from the context alone (the prompt, as in generation) and are
    held fixed over the continuation, so the continuation never influences its own gates.
    """

    def __init__(
        self,
        model,
        hhh_weights: dict | None = None,
        weight_mode: str = "multiply",
        name: str | None = None,
        fingerprint: str | None = None,
        refusal_tau: float | None = None,
    ) -> None:
        self.model, self.tokenizer = model, model.tokenizer
        self.config = model.model.config
        self.logits_budget_mb = model.backbone.logits_budget_mb
        self.hhh_weights, self.weight_mode = hhh_weights, weight_mode
        self.prefs = model.resolve_weights(hhh_weights, mode=weight_mode)  # validates early
        self.refusal_tau = refusal_tau  # model/presets.py: the refusal dial (None: off)
        self.name = name or f"trinityx-{model.routing}"
        dial = {} if refusal_tau is None else {"refusal_tau": refusal_tau}  # old keys unchanged
        self.fingerprint = fingerprint or trinityx_fingerprint(
            model, hhh_weights=hhh_weights, weight_mode=weight_mode, **dial
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        from trinityx.nn.router import combine_gates

        m = self.model
        if self.refusal_tau is not None:  # the dial decides from the context alone
            return m.logits(ids, mask, **self._dial_fields(ids, ctx_mask), logits_to_keep=keep)
        if self.weight_mode == "fixed" or m.routing == "token":
            return m.logits(
                ids,
                mask,
                hhh_weights=self.hhh_weights,
                weight_mode=self.weight_mode,
                logits_to_keep=keep,
            )
        B, K = ids.shape[0], len(m.expert_names)
        if m.routing == "sequence":
            probs = m.router_probs(ids, ctx_mask)  # (B, K): the context alone
        else:
            probs = torch.full((B, K), 1.0 / K, device=m.device)
        prefs = None if self.prefs is None else self.prefs.to(m.device).expand(B, -1)
        gates = combine_gates(probs, prefs, self.weight_mode, m.top_k)  # (B, K)
        return m.logits(ids, mask, gates=gates, logits_to_keep=keep)

    def _dial_fields(self, ids: Tensor, ctx_mask: Tensor) -> dict:
        """`logits` kwargs under the refusal dial: per-row pi chosen from the context alone
        (sequence routing then still routes on the context: the gates below are final)."""
        from trinityx.model.presets import dial_prefs
        from trinityx.nn.router import combine_gates

        m, B, K = self.model, ids.shape[0], len(self.model.expert_names)
        probs = m.router_probs(ids, ctx_mask)  # (B, K) calibrated, from the context
        base = None if self.prefs is None else self.prefs.to(m.device).expand(B, -1)
        prefs = dial_prefs(probs, base, m.expert_names, self.refusal_tau)
        if self.weight_mode == "fixed" or m.routing == "token":
            return {"hhh_weights": prefs, "weight_mode": self.weight_mode}
        if m.routing == "none":
            probs = torch.full((B, K), 1.0 / K, device=m.device)
        return {"gates": combine_gates(probs, prefs, self.weight_mode, m.top_k)}

    prefix_sharing = True

    @property
    def primer_sharing(self) -> bool:
        """Whether a cached prefix may serve different contexts, i.e. whether the routing
        inputs of a forward are the same for every context:

        * token routing: yes. Each token's gates come from its own hidden state at each layer,
          which depends on the tokens up to it only (causal), so a prefix's keys and values are
          the same whatever follows it: the primer is exact across questions (as a KV cache is
          exact in token-mode generation).
        * fixed weights / routing "none": yes, the gates are the user's alone.
        * sequence routing: no. The gates come from the whole context (question included) and
          change every W of every layer, so a primer run under one question's gates is wrong
          for the next question. Choices of one question still share its context.
        """
        if self.refusal_tau is not None:  # the dial reads each whole context
            return False
        return self.weight_mode == "fixed" or self.model.routing != "sequence"

    def _context_fields(self, ctx: Tensor) -> dict:
        """The RoutingState inputs `logits` would use for this context (sequence routing: the
        gates from the context alone, as `_forward` and generation use them)."""
        mask = torch.ones_like(ctx)
        return self.model._prepare(
            ctx, mask, self.hhh_weights, self.weight_mode, False, None, refusal_tau=self.refusal_tau
        )[0]

    def _call(self, fields: dict, **model_kwargs):
        with self.model._routing(**fields):
            return self.model.model(**model_kwargs)

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        res = self.model.generate(
            [list(p) for p in prompts],
            hhh_weights=self.hhh_weights,
            weight_mode=self.weight_mode,
            max_new_tokens=max_new_tokens,
            return_routing=False,
            do_sample=False,
            refusal_tau=self.refusal_tau,
        )
        return [t.strip() for t in res.texts]
