"""Where the chosen TrinityX router sends each benchmark's prompts.

The router's calibration-test accuracy says how well it separates the three training
distributions; this says what it does on the evaluation prompts, which is what decides the
results: e.g. the share of AlpacaEval prompts routed to the helpful expert, and whether benign
questions on sensitive topics go to the harmless expert (which refuses them: over-refusal).
One forward pass per prompt (no generation), cached per compose under the report folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from trinityx.eval.tasks.registry import BENCHMARKS  # noqa: E402
from trinityx.model.artifacts import write_json  # noqa: E402

# benchmarks whose items are prompts a user would send (log-likelihood pairs are skipped)
ROUTED = ("alpaca_eval", "beavertails", "truthfulqa_gen", "refusal_harmful", "over_refusal")


def _prompts(name: str, data_dir: Path, limit: int | None) -> list[str]:
    spec = BENCHMARKS[name]
    return [r[-1]["content"] for r in spec.requests(spec.load(data_dir, limit), None)]


@torch.no_grad()
def routing_shares(
    composed: Path, data_dir: Path, limits: dict[str, int], out: Path, batch_size: int = 16
) -> dict:
    """{benchmark: {"top1_share": {expert: %}, "mean_prob": {expert: p}, "n": n}} + routing.png."""
    from trinityx.model.composed import TrinityXModel

    cached = out / "routing.json"
    key = str((composed / "manifest.json").stat().st_mtime)
    if cached.is_file():
        old = json.loads(cached.read_text())
        if old.get("key") == key:
            return old["benchmarks"]
    model = TrinityXModel.from_pretrained(composed)
    names = list(model.expert_names)
    res: dict[str, dict] = {}
    for bench in ROUTED:
        try:
            prompts = _prompts(bench, data_dir, limits.get(bench))
        except FileNotFoundError:
            continue
        probs = []
        for i in tqdm(range(0, len(prompts), batch_size), desc=f"route {bench}", leave=False):
            ids, mask = model.encode(prompts[i : i + batch_size])
            probs.append(model.router_probs(ids, mask).cpu())
        p = torch.cat(probs)  # (N, K)
        top = p.argmax(-1)
        res[bench] = {
            "top1_share": {
                n: 100.0 * float((top == k).float().mean()) for k, n in enumerate(names)
            },
            "mean_prob": {n: float(p[:, k].mean()) for k, n in enumerate(names)},
            "n": len(prompts),
        }
    write_json(cached, {"key": key, "composed": str(composed), "benchmarks": res})
    _plot(res, names, out / "routing.png")
    return res


def _plot(res: dict, names: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    benches = list(res)
    left = [0.0] * len(benches)
    colors = {"helpful": "#4c72b0", "harmless": "#c44e52", "honest": "#55a868"}
    for n in names:
        vals = [res[b]["top1_share"][n] for b in benches]
        ax.barh(benches, vals, left=left, label=n, color=colors.get(n))
        left = [a + v for a, v in zip(left, vals, strict=True)]
    ax.set_xlabel("% of prompts whose top routing weight is this expert")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Where TrinityX's router sends each benchmark's prompts", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
