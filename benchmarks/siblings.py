"""Token routing with sibling layers sharing one A matmul (nn/siblings.py) vs every layer alone.

Per decode step (KV cache, greedy next token): aten ops counted with a dispatch mode (does not
depend on the machine), then process-CPU-time medians of interleaved repeats, the bare model
(all gates 0) measured in the same run. Random rank-8 experts on all 7 targets.

    OMP_NUM_THREADS=1 python benchmarks/siblings.py [--backbone tiny-random-llama] [--batch 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trinityx.config import BackboneConfig
from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.model.random_experts import make_random_experts
from trinityx.nn.siblings import group_siblings, ungroup


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def decode_steps(model, ids: torch.Tensor, steps: int, count: bool = False):
    """CPU ms per decode step after a prefill of `ids`, or the ops of one step if count."""
    out = model(input_ids=ids, use_cache=True)
    cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    if count:
        with CountOps() as c:
            model(input_ids=nxt, past_key_values=cache, use_cache=True)
        return c.ops
    t = time.process_time()
    for _ in range(steps):
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    return (time.process_time() - t) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="tiny-random-llama")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-tokens", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp()
    cache = f"{work}/cache" if args.backbone.startswith("tiny") else None  # real: user cache
    backbone = load_backbone(BackboneConfig(name=args.backbone, cache_dir=cache))
    experts = make_random_experts(backbone.model, f"{work}/experts")
    tx = TrinityXModel.build(backbone, experts, "token", router_init_std=1.0)
    ids = torch.arange(5, 5 + args.prompt_tokens).repeat(args.batch, 1)
    setups = {
        "alone": lambda: ungroup(tx.layers),
        "shared": lambda: group_siblings(tx.layers),
        "base": lambda: tx.state.reset(),  # timed under experts_off below
    }
    times: dict[str, list[float]] = {k: [] for k in setups}
    for rep in range(args.repeats + 1):  # repeat 0 counts ops (and warms up)
        for name, setup in setups.items():
            setup()
            if name == "base":
                with tx.experts_off():
                    got = decode_steps(tx.model, ids, args.steps, count=rep == 0)
            else:
                got = decode_steps(tx.model, ids, args.steps, count=rep == 0)
            if rep == 0:
                print(f"{name}: {sum(got.values())} aten ops per decode step")
            else:
                times[name].append(got)
    base = statistics.median(times["base"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name}: {med:.3f} CPU ms/step (median of {len(ts)}), {med / base:.3f}x base")


if __name__ == "__main__":
    main()
