"""Time TruthfulQA MC on the SmolLM2 base through the harness (log-likelihood throughput).

    OMP_NUM_THREADS=1 python benchmarks/bench_eval_mc.py OUT.json [LIMIT] [--data-dir DIR]

Writes wall / CPU seconds, load averages, MC1 / MC2 and every per-choice log-likelihood, so
two runs (e.g. two checkouts via PYTHONPATH) can be compared for speed and identical scores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from trinityx.config import BackboneConfig
from trinityx.eval.harness import EvalContext, run_benchmark
from trinityx.eval.model_api import HFEvalModel
from trinityx.model.backbone import load_backbone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("limit", nargs="?", type=int, default=None, help="first N test questions")
    p.add_argument("--data-dir", default="../shared/data")
    args = p.parse_args()
    torch.set_num_threads(1)
    bb = load_backbone(BackboneConfig(device="cpu"))
    model = HFEvalModel(bb.model, bb.tokenizer, "base", "fp-base")
    ctx = EvalContext(data_dir=Path(args.data_dir), n_boot=200)
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_benchmark("truthfulqa_mc", model, ctx, limit=args.limit)
    summary = {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "metrics": res.metrics,
        "n_requests": res.n_requests,
        "n_computed": res.n_computed,
        "limit": args.limit,
    }
    print(json.dumps(summary, indent=1))
    lls = [[r["mc1_lls"], r["mc2_lls"]] for r in res.records]
    Path(args.out).write_text(json.dumps({**summary, "lls": lls}))


if __name__ == "__main__":
    main()
