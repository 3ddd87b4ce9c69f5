"""H3Fusion-style MoE baseline: K FFN copies per decoder layer, one per HHH expert, top-2 gated.

After H3Fusion (Tekin et al., "H3Fusion: Helpful, Harmless, Honest Fusion of Aligned LLMs"):
each aligned model contributes its FFN as one expert of a Mixtral-style sparse block; a
per-layer gate Linear(d, K) on the layer input picks the top-2 experts per token, their
softmax weights renormalised over the two; the gate is supervised with the instruction's
dimension label (H3Fusion's "gating loss"). Here the aligned models are the backbone plus each
LoRA expert, so built from the same adapter folders as TrinityX:

* FFN deltas (modules under a decoder layer's `mlp`) are merged into that expert's FFN copy;
* attention (and any other non-FFN) deltas are merged into the ONE shared weight with mean
  weights 1/K. H3Fusion freezes attention and only fuses FFNs; a uniform merge is the closest
  single set of attention weights to K attention-adapted models.

The model stays a plain HF causal LM (only `layer.mlp` is swapped), so `generate` and the KV
cache work unchanged. Memory is K FFN copies: the cost this baseline pays compared to MoCaE.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from trinityx.model.backbone import Backbone
from trinityx.model.baselines.finetuned import add_lora_delta, load_experts, target_linear
from trinityx.model.inject import ExpertWeights


class H3FusionMoE(nn.Module):
    """Sparse top-k block over K FFN copies; replaces one decoder layer's `mlp`.

    gate: Linear(d, K, bias=False) on the layer input, per token. `force_probs` (K,) replaces
    softmax(gate logits) (e.g. one-hot for tests); `record` keeps gate logits (N, K) in
    `records` for `train_gate` (passed explicitly, no forward hooks).
    """

    def __init__(self, experts: Sequence[nn.Module], hidden_size: int, top_k: int = 2) -> None:
        super().__init__()
        self.gate = nn.Linear(hidden_size, len(experts), bias=False)
        self.experts = nn.ModuleList(experts)
        self.top_k = min(top_k, len(experts))
        self.force_probs: Tensor | None = None
        self.record = False
        self.records: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        h = x.reshape(-1, d)  # (N, d)
        logits = self.gate(h)  # (N, K)
        if self.record:
            self.records.append(logits)
        if self.force_probs is None:
            probs = torch.softmax(logits.float(), -1)
        else:
            probs = self.force_probs.to(h.device, torch.float32).expand_as(logits)
        w, idx = probs.topk(self.top_k, -1)  # (N, top_k)
        w = (w / w.sum(-1, keepdim=True).clamp_min(1e-12)).to(h.dtype)
        out = torch.zeros_like(h)
        for k, expert in enumerate(self.experts):  # Mixtral-style dispatch: each expert once
            rows, slot = torch.where(idx == k)
            if rows.numel():
                out.index_add_(0, rows, expert(h[rows]) * w[rows, slot, None])
        return out.view_as(x)


@dataclass
class H3FusionModel:
    model: nn.Module  # the HF causal LM with H3FusionMoE blocks in place of its FFNs
    tokenizer: object
    expert_names: list[str]
    moe_layers: dict[str, H3FusionMoE]  # "<layer>.mlp" -> block

    def set_force_probs(self, probs: Tensor | None) -> None:
        """Fix every gate's probabilities (K,) (None: back to the learned gates)."""
        for moe in self.moe_layers.values():
            moe.force_probs = probs


def _mlp_names(model: nn.Module) -> list[str]:
    names = [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] == "mlp"]
    if not names:
        raise ValueError(f"{type(model).__name__} has no `mlp` submodules: not a decoder LM")
    return names


def base_mlp_weight(mlp: nn.Module) -> Tensor:
    """Any weight of the FFN, for its device and dtype."""
    return next(p for p in mlp.parameters())


@torch.no_grad()
def build_h3fusion(
    backbone: Backbone,
    experts: Mapping[str, str | Path | ExpertWeights],
    top_k: int = 2,
    seed: int = 0,
    gate_init_std: float = 0.02,
) -> H3FusionModel:
    """Swap every `mlp` of `backbone.model` for an H3FusionMoE (in place) and merge the experts."""
    loaded = load_experts(experts)
    model, K = backbone.model, len(loaded)
    mlps = _mlp_names(model)
    is_ffn = {
        n: next((m for m in mlps if n.startswith(m + ".")), None)
        for e in loaded.values()
        for n in e.modules
    }
    for ew in loaded.values():  # shared (attention) deltas first, on the original weights
        for name, lo in ew.modules.items():
            if is_ffn[name] is None:
                add_lora_delta(target_linear(model, name, ew), lo, 1.0 / K)
    d = model.config.hidden_size
    gen = torch.Generator().manual_seed(seed)
    layers: dict[str, H3FusionMoE] = {}
    for mlp_name in mlps:
        base_mlp = model.get_submodule(mlp_name)
        copies = []
        for ew in loaded.values():
            ffn = copy.deepcopy(base_mlp)
            for name, lo in ew.modules.items():
                if is_ffn[name] == mlp_name:
                    add_lora_delta(target_linear(ffn, name[len(mlp_name) + 1 :], ew), lo)
            copies.append(ffn)
        moe = H3FusionMoE(copies, d, top_k)
        w = base_mlp_weight(base_mlp)
        moe.gate.weight.copy_(torch.randn(K, d, generator=gen) * gate_init_std)
        moe.to(device=w.device, dtype=w.dtype).requires_grad_(False)
        parent, _, child = mlp_name.rpartition(".")
        setattr(model.get_submodule(parent), child, moe)
        layers[mlp_name] = moe
    return H3FusionModel(model, backbone.tokenizer, list(loaded), layers)


def train_gate(
    moe: H3FusionModel,
    prompts_ids: Sequence[Tensor] | Tensor,
    labels: Sequence[int] | Tensor,
    steps: int = 50,
    lr: float = 1e-2,
    attention_mask: Tensor | None = None,
) -> list[float]:
    """Supervise the gates with dimension labels (H3Fusion's gating loss); returns the losses.

    Per prompt, the gate probabilities are averaged over its real tokens and over layers, and
    L = NLL(log p_bar, label). (H3Fusion feeds the averaged probabilities to a cross-entropy as
    if they were logits; the NLL of the average is the proper form of the same target.)
    prompts_ids: a list of 1-D token tensors (left-padded here) or a padded (B, T) tensor with
    `attention_mask`. Only the gate weights train; everything else stays frozen.
    """
    model = moe.model
    device = next(model.parameters()).device
    if isinstance(prompts_ids, Tensor):
        ids = prompts_ids.to(device)
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(device)
    else:
        T = max(len(p) for p in prompts_ids)
        pad = moe.tokenizer.pad_token_id or 0
        ids = torch.full((len(prompts_ids), T), pad, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts_ids):
            ids[i, T - len(p) :], mask[i, T - len(p) :] = p.to(device), 1
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    gates = [m.gate for m in moe.moe_layers.values()]
    for g in gates:
        g.weight.requires_grad_(True)
    opt = torch.optim.Adam([g.weight for g in gates], lr=lr)
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    m = mask.reshape(-1, 1).float()  # (B*T, 1)
    losses: list[float] = []
    try:
        for layer in moe.moe_layers.values():
            layer.record, layer.records = True, []
        for _ in tqdm(range(steps), desc="h3fusion gate", leave=False):
            model.base_model(input_ids=ids, attention_mask=mask, position_ids=pos)
            per_layer = []
            for layer in moe.moe_layers.values():
                p = torch.softmax(layer.records.pop().float(), -1) * m  # (B*T, K)
                p = p.view(*ids.shape, -1).sum(1) / mask.sum(1, keepdim=True)  # (B, K)
                per_layer.append(p)
            p_bar = torch.stack(per_layer).mean(0)  # (B, K)
            loss = F.nll_loss(p_bar.clamp_min(1e-12).log(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        for layer in moe.moe_layers.values():
            layer.record, layer.records = False, []
        for g in gates:
            g.weight.requires_grad_(False)
    return losses
