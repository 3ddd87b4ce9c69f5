"""Throughput and latency of `trinityx serve` under concurrent clients (dynamic batching).

Starts the real server (uvicorn, loopback, ephemeral port) in this process and sends the same
N chat requests, each with its own HHH weights, at concurrency 1 (one at a time: every request
is its own batch) and then 4, 8, 16 (C clients each waiting for its answer before sending the
next). Greedy decoding, so every level generates exactly the same tokens; throughput is
completion tokens (from `usage`) / wall time, latency is per request. Prints a table with
ratios to concurrency 1 and writes JSON. Not a test: timings depend on the machine's load.

    OMP_NUM_THREADS=2 python benchmarks/bench_serve.py --requests 16 --max-tokens 24 \
        --out /work/runs/serve/bench.json

Without --model, SmolLM2-135M-Instruct gets random rank-8 experts on all 7 linear targets
(token routing): speed depends on the adapters' shapes, not on what they learned. --model takes
a composed artifact folder or any eval-harness spec, as `trinityx serve` does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

PROMPTS = [
    "How do I pick a lock?",
    "Write a short poem about the sea.",
    "Is the earth flat? Answer honestly.",
    "Give me three tips for a job interview.",
    "What is the capital of Australia?",
    "Explain photosynthesis to a child.",
    "How can I make my neighbour's dog stop barking?",
    "Summarise the plot of Romeo and Juliet.",
]


def build_served(args):
    """The model to serve: --model (folder or spec), else SmolLM2 with random experts."""
    from trinityx.serve.served import ServedModel, load_served

    if args.model:
        return load_served(args.model, args.config, name="bench")
    from trinityx.config import BackboneConfig
    from trinityx.model.backbone import load_backbone
    from trinityx.model.composed import TrinityXModel
    from trinityx.model.random_experts import make_random_experts

    bb = load_backbone(BackboneConfig(name=args.backbone, device="cpu"))
    dirs = make_random_experts(bb.model, Path(tempfile.mkdtemp()) / "experts", seed=0)
    tx = TrinityXModel.build(bb, dirs, "token")
    return ServedModel(tx.model, tx.tokenizer, "bench", tx=tx)


def requests_for(n: int, max_tokens: int, experts: list[str]) -> list[dict]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        body = {
            "model": "bench",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        }
        if experts:  # every request its own mixture
            body["hhh"] = {"weights": {e: round(rng.uniform(0.1, 1.0), 2) for e in experts}}
        out.append(body)
    return out


def run_level(url: str, bodies: list[dict], concurrency: int) -> dict:
    """All bodies with `concurrency` clients; wall time, tokens and per-request latencies."""
    client = httpx.Client(base_url=url, timeout=600)

    def one(body: dict) -> tuple[float, int, str]:
        t0 = time.perf_counter()
        r = client.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        j = r.json()
        return (
            time.perf_counter() - t0,
            j["usage"]["completion_tokens"],
            j["choices"][0]["message"]["content"],
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        res = list(pool.map(one, bodies))
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in res)
    tokens = sum(r[1] for r in res)
    return {
        "concurrency": concurrency,
        "wall_s": wall,
        "completion_tokens": tokens,
        "tok_per_s": tokens / wall,
        "p50_s": statistics.median(lat),
        "p95_s": lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))],
        "texts": [r[2] for r in res],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        default=None,
        help="artifact folder or eval spec (default: --backbone with random experts)",
    )
    p.add_argument("--config", default=None, help="eval-config YAML for --model specs")
    p.add_argument("--backbone", default="smollm2-135m-instruct")
    p.add_argument("--requests", type=int, default=16, help="requests per level")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--levels", default="1,4,8,16", help="concurrency levels (1 first)")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args(argv)

    import torch

    from trinityx.serve.app import create_app, serve_in_thread

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    served = build_served(args)
    app = create_app(served, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    bodies = requests_for(args.requests, args.max_tokens, served.expert_names)
    levels = [int(c) for c in args.levels.split(",")]
    load = [os.getloadavg()[0]]
    rows = []
    with serve_in_thread(app) as url:
        run_level(url, bodies[:2], 2)  # warm-up (first-call allocations)
        for c in levels:
            rows.append(run_level(url, bodies, c))
            print(f"concurrency {c}: {rows[-1]['tok_per_s']:.1f} tok/s", file=sys.stderr)
    load.append(os.getloadavg()[0])
    base = rows[0]
    same = all(r["texts"] == base["texts"] for r in rows)
    print(
        f"\n{args.requests} requests x max_tokens {args.max_tokens}, greedy, each with its own "
        f"HHH weights; threads {torch.get_num_threads()}; load average {load[0]:.2f} -> "
        f"{load[1]:.2f}; answers identical at every level: {same}\n"
    )
    print("| concurrency | tokens | wall s | tok/s | × one-at-a-time | p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['completion_tokens']} | {r['wall_s']:.1f} | "
            f"{r['tok_per_s']:.1f} | {r['tok_per_s'] / base['tok_per_s']:.2f} | "
            f"{r['p50_s']:.2f} | {r['p95_s']:.2f} |"
        )
    result = {
        "args": vars(args),
        "load_avg_1min": load,
        "identical_answers": same,
        "levels": [{k: v for k, v in r.items() if k != "texts"} for r in rows],
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
