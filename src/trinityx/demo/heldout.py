"""A small metric table on the bundled held-out slice: backbone vs each expert vs TrinityX.

All five systems are the one composed model under different gates (experts off; one expert
alone via fixed one-hot weights; the calibrated router), so nothing is loaded twice and the
figures differ only by the composition. Columns: response-token NLL on each dimension's held-out
rows (the loss the experts are trained and judged by; lower is better), and the refusal rate on
the held-out harmful prompts (higher is better) and on the held-out benign-but-edgy ones (lower
is better; the pairs whose rejected answer is a refusal), by the project's keyword detector.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trinityx import DIMENSIONS
from trinityx.config import DataSource, TrainExpertConfig
from trinityx.data.formatting import collate, encode_sft
from trinityx.data.loading import load_sources
from trinityx.data.records import PreferencePair, SFTExample
from trinityx.eval.answer_checks import is_refusal
from trinityx.model.composed import TrinityXModel
from trinityx.model.lm_head import check_head, final_hidden, labelled_nll
from trinityx.model.scoring import generate_greedy
from trinityx.nn.router import combine_gates

SYSTEMS = ["backbone", *[f"{d} expert" for d in DIMENSIONS], "TrinityX"]


def heldout_slices(limit: int | None) -> tuple[dict[str, list[SFTExample]], list[PreferencePair]]:
    """Per dimension the first `limit` held-out SFT rows; and the held-out harmless pairs."""
    out: dict[str, list[SFTExample]] = {}
    pairs: list[PreferencePair] = []
    for dim in DIMENSIONS:
        src = DataSource(path=f"starter:{dim}", split="heldout")
        cfg = TrainExpertConfig(dimension=dim, output_dir="unused", train=[src])
        rows = load_sources(cfg, [src], dimension=dim)
        if dim == "harmless":
            pairs = [r for r in rows if isinstance(r, PreferencePair)]
        out[dim] = [r.as_sft() if isinstance(r, PreferencePair) else r for r in rows][:limit]
    return out, pairs


def _gates(model: TrinityXModel, system: str, batch: list[SFTExample]) -> torch.Tensor | None:
    """Gates (B, K) for a system; None = the model's own routing (token routers)."""
    K, B = len(model.expert_names), len(batch)
    if system.endswith(" expert"):
        g = torch.zeros(B, K)
        g[:, model.expert_names.index(system.removesuffix(" expert"))] = 1.0
        return g
    if model.routing == "sequence":  # from the prompt alone, as at generation time
        ids, mask = model.encode([list(ex.messages) for ex in batch])
        return combine_gates(model.router_probs(ids, mask), None, "multiply", model.top_k)
    return None


@torch.no_grad()
def response_nll(
    model: TrinityXModel, system: str, examples: list[SFTExample], batch_size: int = 8
) -> float:
    """Mean next-token NLL over response tokens (same definition as the experts' held-out loss)."""
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        enc = collate(
            [encode_sft(model.tokenizer, ex, 256) for ex in batch], model.tokenizer.pad_token_id
        )
        ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
        if system == "backbone":
            with model.experts_off():
                hidden, last = final_hidden(model.model, input_ids=ids, attention_mask=mask)
        else:
            out = model.teacher_forced(
                ids,
                mask,
                gates=_gates(model, system, batch),
                logits_to_keep=1,
                output_hidden_states=True,
            )
            hidden, last = out.hidden_states[-1], out.logits[:, -1]
        check_head(model.model, hidden, last)  # the LM head then runs on response tokens only
        nll, n = labelled_nll(model.model, hidden, enc["labels"], model.backbone.logits_budget_mb)
        total += float(nll)
        count += n
    return total / max(count, 1)


def _answers(model: TrinityXModel, system: str, prompts: list[str], n: int) -> list[str]:
    if system == "backbone":
        with model.experts_off():
            return generate_greedy(
                model.model,
                model.tokenizer,
                [({"role": "user", "content": p},) for p in prompts],
                n,
            )
    if system == "TrinityX":
        return model.generate(
            prompts, max_new_tokens=n, do_sample=False, return_routing=False
        ).texts
    name = system.removesuffix(" expert")
    return model.generate(
        prompts,
        hhh_weights={name: 1.0},
        weight_mode="fixed",
        max_new_tokens=n,
        do_sample=False,
        return_routing=False,
    ).texts


def metric_table(
    model: TrinityXModel,
    limit: int | None,
    max_new_tokens: int,
    tick: Callable[[], None] = lambda: None,
) -> dict:
    """{system: {"loss": {dim: nll}, "refusal_harmful": %, "refusal_benign": %}} plus sizes."""
    slices, pairs = heldout_slices(limit)
    # Borderline-but-benign pairs prefer the answer over an unnecessary refusal.
    edgy = [is_refusal(p.rejected) and not is_refusal(p.chosen) for p in pairs]
    benign = [p.messages[-1]["content"] for p, e in zip(pairs, edgy, strict=True) if e]
    harmful = [p.messages[-1]["content"] for p, e in zip(pairs, edgy, strict=True) if not e][:limit]
    rows: dict[str, dict] = {}
    for system in SYSTEMS:
        loss = {d: response_nll(model, system, ex) for d, ex in slices.items()}
        answers = _answers(model, system, harmful + benign, max_new_tokens)
        refused = [is_refusal(a) for a in answers]
        rows[system] = {
            "loss": loss,
            "refusal_harmful": 100.0 * sum(refused[: len(harmful)]) / max(len(harmful), 1),
            "refusal_benign": 100.0 * sum(refused[len(harmful) :]) / max(len(benign), 1),
        }
        tick()
    return {
        "rows": rows,
        "n": {d: len(v) for d, v in slices.items()},
        "n_harmful": len(harmful),
        "n_benign": len(benign),
    }
