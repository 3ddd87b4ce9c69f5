"""Evaluation wrappers for the model-combining baselines of model/baselines/: H3Fusion-style MoE,
output-level ensemble and X-LoRA (registered in eval/baselines.py when those modules exist).

* `h3fusion`: the gates are trained (H3Fusion's gating loss) on the same labelled prompts
  TrinityX's router sees by default (the starter train splits), then saved under
  `<cache_dir>/h3fusion/<fingerprint>.safetensors`, so a rerun reuses them instead of retraining.
* `ensemble`: next-token probabilities of K merged models averaged; log-likelihood is the log of
  that mixture, generation is OutputEnsemble's greedy loop.
* `xlora`: PEFT's X-LoRA with an UNTRAINED (seeded, random) classifier: a cost reference from the
  speed benchmark, not a quality baseline; evaluate it only to confirm the harness runs it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from trinityx.config import DataSource, resolve_path
from trinityx.eval.config import EvalConfig
from trinityx.eval.expert_inputs import load_experts
from trinityx.eval.model_api import EvalModel, HFEvalModel, Messages, fingerprint_of

H3_OPTIONS = {
    "top_k": 2,
    "steps": 50,
    "lr": 1e-2,
    "limit": 32,
    "max_length": 128,
    "router_data": None,
}


def _options(cfg: EvalConfig, allowed: dict) -> dict:
    unknown = sorted(set(cfg.baseline_options) - set(allowed))
    if unknown:
        raise ValueError(
            f"baseline_options: unknown key(s) {unknown} for {cfg.model!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return allowed | cfg.baseline_options


def _experts(cfg: EvalConfig):
    """(backbone, adapter hashes) for cfg.experts, checked against their manifests."""
    if not cfg.experts:
        raise ValueError(f"`{cfg.model}` needs `experts` (name -> expert folder) in the config")
    return load_experts(cfg, cfg.model)


def _gate_data(cfg: EvalConfig, opts: dict, tokenizer) -> tuple[list[Tensor], list[int]]:
    """Labelled prompts (starter train splits by default), chat-templated, kept to max_length."""
    from trinityx.data.formatting import prompt_ids
    from trinityx.data.loading import load_sources

    names = list(cfg.experts)
    sources = opts["router_data"] or [
        {"path": f"starter:{n}", "label": n, "split": "train"} for n in names
    ]
    ids, labels = [], []
    for s in sources:
        if s.get("label") not in names:
            raise ValueError(f"baseline_options.router_data: {s} needs a `label` among {names}")
        ds = DataSource(path=s["path"], split=s.get("split"), limit=opts["limit"])
        for ex in load_sources(cfg, [ds], kind="routing", dimension=s["label"]):
            ids.append(torch.tensor(prompt_ids(tokenizer, ex.messages)[-opts["max_length"] :]))
            labels.append(names.index(s["label"]))
    if not ids:
        raise ValueError("h3fusion: no gate-training prompts loaded; check router_data")
    return ids, labels


def build_h3fusion_eval(arg: str | None, cfg: EvalConfig) -> EvalModel:
    from safetensors.torch import load_file, save_file

    from trinityx.model.baselines.h3fusion import build_h3fusion, train_gate

    opts = _options(cfg, H3_OPTIONS)
    bb, hashes = _experts(cfg)
    ids, labels = _gate_data(cfg, opts, bb.tokenizer)
    data_fp = fingerprint_of(ids=[t.tolist() for t in ids], labels=labels)
    fp = fingerprint_of(
        kind="h3fusion",
        backbone=bb.weights_hash,
        adapters=hashes,
        options={k: v for k, v in opts.items() if k != "router_data"},
        data=data_fp,
        seed=cfg.seed,
    )
    tok = bb.tokenizer
    h3 = build_h3fusion(bb, cfg.experts, top_k=opts["top_k"], seed=cfg.seed)
    gates = Path(resolve_path(cfg, cfg.cache_dir)) / "h3fusion" / f"{fp[:24]}.safetensors"
    if gates.is_file():
        saved = load_file(str(gates))
        with torch.no_grad():
            for name, moe in h3.moe_layers.items():
                moe.gate.weight.copy_(saved[name])
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            train_gate(h3, ids, labels, steps=opts["steps"], lr=opts["lr"])
        gates.parent.mkdir(parents=True, exist_ok=True)
        save_file(
            {n: m.gate.weight.detach().contiguous().cpu() for n, m in h3.moe_layers.items()},
            str(gates),
        )
    return HFEvalModel(h3.model, tok, cfg.name or "h3fusion", fp)


class EnsembleEvalModel(EvalModel):
    """An OutputEnsemble behind the EvalModel interface (mixture of next-token distributions)."""

    def __init__(self, ensemble, name: str, fingerprint: str) -> None:
        self.ensemble, self.tokenizer = ensemble, ensemble.tokenizer
        self.name, self.fingerprint = name, fingerprint
        self.config = ensemble.members[0].config

    @property
    def device(self) -> torch.device:
        return next(self.ensemble.members[0].parameters()).device

    def _forward(self, ids: Tensor, mask: Tensor, ctx_mask: Tensor, keep: int) -> Tensor:
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        mix = None
        for m, w in zip(self.ensemble.members, self.ensemble.weights, strict=True):
            logits = m(
                input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep
            ).logits
            p = torch.softmax(logits.float(), -1) * w  # (B, keep, V)
            mix = p if mix is None else mix.add_(p)
        return mix.clamp_min(1e-30).log()  # already normalised: log_softmax leaves it unchanged

    def _generate_batch(self, prompts: list[Messages], max_new_tokens: int) -> list[str]:
        enc = self.tokenizer(
            [self.chat_prompt(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        )
        out = self.ensemble.generate(
            enc["input_ids"],
            enc["attention_mask"],
            max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def build_ensemble_eval(arg: str | None, cfg: EvalConfig) -> EvalModel:
    from trinityx.model.baselines.ensemble import build_ensemble

    opts = _options(cfg, {"weights": None})
    bb, hashes = _experts(cfg)
    w = opts["weights"]
    weights = None if w is None else [float(w.get(n, 0.0)) for n in cfg.experts]
    ens = build_ensemble(bb, cfg.experts, weights)
    fp = fingerprint_of(
        kind="ensemble", backbone=bb.weights_hash, adapters=hashes, weights=ens.weights
    )
    return EnsembleEvalModel(ens, cfg.name or "ensemble", fp)


def build_xlora_eval(arg: str | None, cfg: EvalConfig) -> EvalModel:
    from trinityx.model.baselines.xlora import build_xlora

    opts = _options(cfg, {"xlora_depth": 1, "xlora_size": 256})
    bb, hashes = _experts(cfg)
    with torch.random.fork_rng(devices=[]):  # the untrained classifier: seeded random init
        torch.manual_seed(cfg.seed)
        x = build_xlora(bb, cfg.experts, opts["xlora_depth"], opts["xlora_size"])
    fp = fingerprint_of(
        kind="xlora", backbone=bb.weights_hash, adapters=hashes, options=opts, seed=cfg.seed
    )
    model = HFEvalModel(x.model, x.tokenizer, cfg.name or "xlora", fp)
    model.prefix_sharing = False  # X-LoRA runs without a KV cache
    return model
