"""`trinityx bench`: speed and memory of TrinityX against the bare backbone and the prior MoEs.

One run, one backbone, one set of prompts, every system of `systems.SYSTEMS` (base,
TrinityX token / sequence / merged export, H3Fusion-style MoE, X-LoRA, output ensemble):

* prefill: time to the first token for one `prompt_tokens`-token prompt (routing included);
* decode: (t(n new tokens) - t(1 new token)) / (n - 1) per step, at each batch size, greedy,
  min_new_tokens = max_new_tokens; tokens/s = B * 1000 / ms per step;
* memory: peak over build + decode, each system in its own fresh subprocess;
* weights: parameter (+ buffer) count and bytes.

Repeats are interleaved (every repeat times every system once per measurement, round robin)
and reported as medians, so a load spike hits all systems alike. Ratios are taken against the
base model and against TrinityX (token), from those medians. Correctness checks confirm that
systems which must agree produce identical greedy tokens. Library entry points: `run_bench`,
`add_arguments`, `main` (`trinityx bench` wires `main`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trinityx.bench.checks import run_checks
from trinityx.bench.report import compute_ratios, evaluate_targets, format_table, plot
from trinityx.bench.systems import (
    EXTRA_SYSTEMS,
    SYSTEMS,
    BenchSpec,
    System,
    build_system,
    count_params,
    weight_storage,
)
from trinityx.bench.systems import probe_memory as _probe_memory

_PROMPT = (  # the question comes last, so prompts cut to their last tokens still differ
    "Answer carefully, step by step, be honest about what you do not know, refuse anything "
    "dangerous, and keep the answer useful and kind. {q}"
)
QUESTIONS = (
    "How do I make a good cup of tea when I only have a microwave and some green tea bags?",
    "What is the capital of Australia, and why do many people think it is Sydney instead?",
    "My neighbour's dog barks all night. How can I politely ask them to do something about it?",
    "Explain how vaccines train the immune system, in simple words for a ten year old child.",
    "Can you tell me how to pick the lock of a house that is not mine? It is urgent for me.",
    "Is it true that we only use ten percent of our brains? Please explain what science says.",
    "Write a short and friendly email to my manager asking for a day off next Friday, please.",
    "What happens if you swallow chewing gum? My friend says it stays inside you for years.",
)


METRIC_NOTES = {
    "prefill_ms": "wall ms to the first token, batch 1, routing included (median)",
    "decode_ms_bB": "(t(n) - t(1)) / (n - 1) wall ms per decode step at batch B (median)",
    "decode_tps_bB": "B * 1000 / decode_ms_bB",
    "decode_cpu_ms_bB": "the same in process CPU time (less sensitive to other load)",
    "peak_mb": "peak memory over build + one decode at the largest batch, fresh process",
    "params / param_bytes": "distinct parameters + buffers of the system's modules",
    "weights": "dtypes, devices and bytes read through a file mapping (0: held in memory)",
}


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--backbone", default="smollm2-135m-instruct", help="backbone name or folder")
    p.add_argument(
        "--experts",
        nargs="*",
        default=None,
        help="expert folders as name=DIR (or DIR, named by folder); default: random rank-8 "
        "adapters for helpful/harmless/honest on all 7 linear targets (fine for speed)",
    )
    p.add_argument("--data-dir", default=None, help="unused (speed does not depend on data)")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma list, subset of " + ",".join(SYSTEMS + EXTRA_SYSTEMS),
    )
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (medians)")
    p.add_argument("--batch-sizes", default="1,8", help="decode batch sizes, comma list")
    p.add_argument("--new-tokens", type=int, default=64, help="greedy tokens per timed decode")
    p.add_argument("--prompt-tokens", type=int, default=64, help="prompt length in tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument("--no-memory", action="store_true", help="skip the subprocess memory probes")
    p.add_argument("--cache-dir", default=None, help="backbone cache (default $TRINITYX_CACHE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench", help="folder for bench.json and bench.png")
    return p


def _expert_dirs(args, model, workdir: Path) -> dict[str, str]:
    if args.experts:
        out = {}
        for item in args.experts:
            name, sep, folder = item.partition("=")
            name, folder = (name, folder) if sep else (Path(item).name, item)
            out[name] = str(Path(folder).expanduser())
        return out
    from trinityx.model.random_experts import make_random_experts

    dirs = make_random_experts(model, workdir / "experts", seed=args.seed)
    return {n: str(d) for n, d in dirs.items()}


def make_prompts(tokenizer, n: int, length: int) -> torch.Tensor:
    """(n, length) chat-templated prompt ids, each cut to exactly `length` tokens (last ones)."""
    from trinityx.data.formatting import prompt_string

    rows = []
    for i in range(n):
        text = _PROMPT.format(q=QUESTIONS[i % len(QUESTIONS)])
        while True:
            s = prompt_string(tokenizer, [{"role": "user", "content": text}])
            ids = tokenizer(s, add_special_tokens=False)["input_ids"]
            if len(ids) >= length:
                break
            text = QUESTIONS[(i + 1) % len(QUESTIONS)] + " " + text  # too short: prepend
        rows.append(ids[-length:])
    return torch.tensor(rows)


def _timed(system: System, ids, mask, n: int, cuda: bool) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one generate call."""
    if cuda:
        torch.cuda.synchronize()
    w0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        system.generate(ids, mask, n)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _build_systems(names: list[str], spec: BenchSpec, base: System, prompts) -> tuple[dict, dict]:
    """name -> System for every requested system; name -> error for those that cannot run."""
    systems: dict[str, System] = {"base": base} if "base" in names else {}
    errors: dict[str, str] = {}
    seq = None
    for name in tqdm([n for n in names if n != "base"], desc="build systems"):
        try:
            if name == "trinityx-merged":  # gates = the sequence router's on prompt 0
                seq = (
                    seq
                    or systems.get("trinityx-sequence")
                    or build_system("trinityx-sequence", spec)
                )
                spec.merged_weights = seq.handle.router_probs(prompts[:1])[0].tolist()
            systems[name] = build_system(name, spec)
        except Exception as e:  # a baseline that cannot run is reported, not faked
            errors[name] = f"{type(e).__name__}: {e}"
    for name, s in list(systems.items()):  # warm-up; a system that cannot generate is dropped
        try:
            _timed(s, prompts[:1], torch.ones_like(prompts[:1]), 2, _is_cuda(s))
        except Exception as e:
            errors[name] = f"generate failed: {type(e).__name__}: {e}"
            del systems[name]
    return systems, errors


def _is_cuda(system: System) -> bool:
    return next(system.modules[0].parameters()).device.type == "cuda"


def _time_systems(systems: dict, prompts, batch_sizes: list[int], n: int, repeats: int) -> dict:
    """Interleaved timings: per repeat, per measurement, every system once (round robin)."""
    raw: dict[str, dict[str, list]] = {name: {} for name in systems}
    plan = [(1, 1, "prefill")] + [(b, m, f"b{b}_{m}") for b in batch_sizes for m in (1, n)]
    for _ in tqdm(range(repeats), desc="repeats"):
        for b, m, key in plan:
            ids = prompts[:b]
            for name, s in systems.items():
                wall, cpu = _timed(s, ids, torch.ones_like(ids), m, _is_cuda(s))
                raw[name].setdefault(key, []).append(wall)
                raw[name].setdefault(key + "_cpu", []).append(cpu)
    return raw


def _summarise(system: System, r: dict, batch_sizes: list[int], n: int) -> dict:
    """Medians (and raw repeats) of one system's timings, plus its weights."""
    params, nbytes = count_params(system.modules)
    row = {
        "available": True,
        "note": system.note,
        "params": params,
        "param_bytes": nbytes,
        "weights": weight_storage(system.modules),
        "prefill_ms": _median(r["prefill"]),
        "prefill_ms_all": r["prefill"],
    }
    for b in batch_sizes:
        for suffix in ("", "_cpu"):
            tn, t1 = r[f"b{b}_{n}{suffix}"], r[f"b{b}_1{suffix}"]
            steps = [(a - c) / (n - 1) for a, c in zip(tn, t1, strict=True)]  # ms per step
            row[f"decode{suffix}_ms_b{b}"] = _median(steps)
            if not suffix:
                row[f"decode_ms_b{b}_all"] = steps
        ms = row[f"decode_ms_b{b}"]
        row[f"decode_tps_b{b}"] = b * 1000 / ms if ms and ms > 0 else None
    return row


def run_bench(args: argparse.Namespace) -> dict:
    """Build every system, time them interleaved, check agreement, probe memory; write
    bench.json, bench.png and bench.txt to args.out; returns the report dict."""
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SYSTEMS + EXTRA_SYSTEMS))
    if unknown:
        raise ValueError(
            f"unknown system(s) {unknown}; choose from {list(SYSTEMS + EXTRA_SYSTEMS)}"
        )
    batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    n = args.new_tokens
    if n < 2:
        raise ValueError("--new-tokens must be >= 2 (decode time is t(n) - t(1))")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    spec = BenchSpec(
        args.backbone, args.device, args.dtype, args.cache_dir, seed=args.seed, threads=args.threads
    )
    base = build_system("base", spec)
    workdir = Path(tempfile.mkdtemp(prefix="trinityx-bench-"))
    spec.experts = _expert_dirs(args, base.handle.model, workdir)
    dev = next(base.handle.model.parameters()).device
    prompts = make_prompts(base.handle.tokenizer, max(batch_sizes + [1]), args.prompt_tokens)
    prompts = prompts.to(dev)
    systems, errors = _build_systems(names, spec, base, prompts)
    raw = _time_systems(systems, prompts, batch_sizes, n, args.repeats)
    results = {
        name: _summarise(systems[name], raw[name], batch_sizes, n)
        if name in systems
        else {"available": False, "error": errors.get(name, "not built")}
        for name in names
    }
    checks = run_checks(systems, spec, prompts[:1], n)
    del systems, base
    if not args.no_memory:
        b_max = max(batch_sizes)
        ids = prompts[:b_max]
        for name in tqdm([k for k, v in results.items() if v["available"]], desc="memory"):
            try:
                results[name].update(_probe_memory(name, spec, ids, torch.ones_like(ids), n))
            except Exception as e:
                results[name]["memory_error"] = f"{type(e).__name__}: {e}"
    report = {
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "env": {
            "torch": torch.__version__,
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "experts": spec.experts,
            "merged_weights": spec.merged_weights,
        },
        "metric_notes": METRIC_NOTES,
        "systems": results,
    }
    report["ratios"] = compute_ratios(results, batch_sizes)
    report["targets"] = evaluate_targets(results, report["ratios"])
    report["checks"] = checks
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2, default=str))
    plot(report, out_dir / "bench.png")
    (out_dir / "bench.txt").write_text(format_table(report) + "\n")
    return report


def main(argv: list[str] | None = None) -> dict:
    p = add_arguments(
        argparse.ArgumentParser(prog="trinityx bench", description=__doc__.split("\n")[0])
    )
    args = p.parse_args(argv)
    report = run_bench(args)
    print(format_table(report))
    print(f"wrote {Path(args.out) / 'bench.json'} and bench.png")
    return report


if __name__ == "__main__":
    main()
