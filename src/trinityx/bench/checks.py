"""Agreement checks for `trinityx bench`: systems that compute the same function must produce the
same greedy tokens, or a speed-up would be a silent change of behaviour.

* sequence vs merged: TrinityX sequence routing on a prompt, and `export.merged_state` with the
  gates the sequence router chose for that prompt (the merged system of the benchmark).
* token one-hot vs merged one-hot: every token router forced to expert 0 (zero weights, bias
  [1e4, 0, ...] so softmax is exactly one-hot) against merged_state with {expert 0: 1}.
* base vs experts off: the token-routed model with all gates 0 against the bare backbone.
* sequence folded vs unfolded: sequence routing with the shared gates folded into W0 for the
  call (`model/folding.py`, what `generate` does by default) against the fused MoCaE path.
* token siblings shared vs separate: token routing with q/k/v and gate/up sharing one A matmul
  (`nn/siblings.py`, the default) against every layer on its own.

Float rounding differs between the fused and the merged paths, so "identical" is asserted on
greedy tokens (what a user sees), with the first differing position reported otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trinityx.bench.systems import BenchSpec, System


def _compare(what: str, a: Tensor, b: Tensor) -> dict:
    a, b = a.cpu(), b.cpu()
    same = a.shape == b.shape and bool(torch.equal(a, b))
    diff = None
    if not same and a.shape == b.shape:
        diff = int((a != b).nonzero()[0, -1])
    return {"what": what, "identical": same, "first_diff": diff, "a": a.tolist(), "b": b.tolist()}


def _hf_tokens(model, ids: Tensor, n: int, pad: int | None) -> Tensor:
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        min_new_tokens=n,
        max_new_tokens=n,
        pad_token_id=pad,
    )
    return out[:, ids.shape[1] :]


def _separate_tokens(system: System, ids: Tensor, mask: Tensor, n: int) -> Tensor:
    """The token-routed system's tokens with every MoCaE layer on its own path, regrouped after."""
    from trinityx.nn.siblings import group_siblings, ungroup

    layers = system.handle.layers
    ungroup(layers)
    try:
        return system.generate(ids, mask, n)
    finally:
        group_siblings(layers)


@torch.no_grad()
def run_checks(systems: dict[str, System], spec: BenchSpec, ids: Tensor, n: int) -> dict:
    """name -> {identical, first_diff, a, b}; checks whose systems are absent are skipped."""
    from trinityx.model.export import merged_state

    out: dict[str, dict] = {}
    mask = torch.ones_like(ids)
    if "trinityx-sequence" in systems and "trinityx-merged" in systems:
        out["sequence_vs_merged"] = _compare(
            f"trinityx-sequence vs merged_state(gates={spec.merged_weights})",
            systems["trinityx-sequence"].generate(ids, mask, n),
            systems["trinityx-merged"].generate(ids, mask, n),
        )
    if "trinityx-sequence" in systems:
        seq = systems["trinityx-sequence"].handle

        def seq_tokens(fold: bool) -> Tensor:
            res = seq.generate(
                input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, fold=fold
            )
            return res.sequences[:, res.prompt_length :]

        out["sequence_folded_vs_unfolded"] = _compare(
            "trinityx-sequence generate(fold=True) vs generate(fold=False)",
            seq_tokens(True),
            seq_tokens(False),
        )
    if "trinityx-token" in systems:
        tx = systems["trinityx-token"].handle
        pad = tx.tokenizer.pad_token_id
        saved = {
            k: (la.lora_A_cat[la.total_rank :].clone(), la.router_bias.clone())
            for k, la in tx.layers.items()
        }
        K = len(tx.expert_names)
        try:
            for la in tx.layers.values():
                w = torch.zeros(K, la.base_layer.in_features)
                b = torch.zeros(K)
                b[0] = 1e4  # softmax -> exactly [1, 0, ..., 0] in float32
                la.attach_router(w, b)
            tok = systems["trinityx-token"].generate(ids, mask, n)
        finally:
            for k, la in tx.layers.items():
                la.attach_router(*saved[k])
        merged = merged_state(tx, {tx.expert_names[0]: 1.0}).eval()
        out["token_onehot_vs_merged_onehot"] = _compare(
            f"trinityx-token with every router one-hot on {tx.expert_names[0]!r} vs "
            f"merged_state({{{tx.expert_names[0]!r}: 1}})",
            tok,
            _hf_tokens(merged, ids, n, pad),
        )
        del merged
        out["token_siblings_shared_vs_separate"] = _compare(
            "trinityx-token with q/k/v and gate/up sharing one A matmul vs each layer alone",
            systems["trinityx-token"].generate(ids, mask, n),
            _separate_tokens(systems["trinityx-token"], ids, mask, n),
        )
        with tx.experts_off():
            off = _hf_tokens(tx.model, ids, n, pad)
        if "base" in systems:
            out["base_vs_experts_off"] = _compare(
                "base vs trinityx-token with experts off",
                systems["base"].generate(ids, mask, n),
                off,
            )
    return out
