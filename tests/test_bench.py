"""`trinityx bench` on the tiny random Llama: every system runs, agreeing systems agree, ratios are
the medians' quotients, outputs are written. Never a timed assertion (timings are whatever the
machine gives); the memory probe runs in a spawn subprocess for two systems only (slow-ish)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from trinityx.bench import add_arguments, main, make_prompts, run_bench
from trinityx.bench.report import compute_ratios, evaluate_targets, ratio_metrics
from trinityx.bench.systems import SYSTEMS


def _args(cache_dir, out, *extra) -> argparse.Namespace:
    argv = [
        "--backbone",
        "tiny-random-llama",
        "--cache-dir",
        str(cache_dir),
        "--repeats",
        "1",
        "--new-tokens",
        "3",
        "--batch-sizes",
        "1,2",
        "--prompt-tokens",
        "12",
        "--out",
        str(out),
    ]
    return add_arguments(argparse.ArgumentParser()).parse_args(argv + list(extra))


def _check_ratios(report: dict) -> None:
    rows = report["systems"]
    for key, ref in (("vs_base", "base"), ("vs_trinityx_token", "trinityx-token")):
        for name, ratios in report["ratios"][key].items():
            for metric, value in ratios.items():
                assert value == pytest.approx(rows[name][metric] / rows[ref][metric], rel=1e-12)
        assert report["ratios"][key][ref]["prefill_ms"] == 1.0


def test_bench_end_to_end_all_systems(cache_dir, tmp_path):
    out = tmp_path / "bench"
    report = run_bench(_args(cache_dir, out, "--no-memory"))
    rows = report["systems"]
    assert list(rows) == list(SYSTEMS)
    for name, row in rows.items():
        assert row["available"], f"{name}: {row.get('error')}"
        assert row["params"] > 0 and row["param_bytes"] >= 4 * row["params"] // 2
        assert len(row["prefill_ms_all"]) == 1 and row["prefill_ms"] > 0
        assert {"decode_ms_b1", "decode_ms_b2", "decode_tps_b2", "decode_cpu_ms_b1"} <= set(row)
    # the honest floor: every system holds its weights in memory, in one dtype
    assert all(r["weights"]["file_mapped_bytes"] == 0 for r in rows.values())
    assert len({d for r in rows.values() for d in r["weights"]["dtypes"]}) == 1
    assert "floor: every system holds its weights in memory" in (out / "bench.txt").read_text()
    # decode medians are (t(n) - t(1)) / (n - 1) of the raw repeats
    assert rows["base"]["decode_ms_b1"] == rows["base"]["decode_ms_b1_all"][0]
    # weights: merged = base, H3Fusion holds 3 FFN copies, the ensemble 3 models
    assert rows["trinityx-merged"]["params"] == rows["base"]["params"]
    assert rows["ensemble"]["params"] == 3 * rows["base"]["params"]
    assert rows["h3fusion"]["params"] > rows["trinityx-token"]["params"] > rows["base"]["params"]
    checks = report["checks"]
    assert set(checks) == {
        "sequence_vs_merged",
        "sequence_folded_vs_unfolded",
        "token_onehot_vs_merged_onehot",
        "token_siblings_shared_vs_separate",
        "base_vs_experts_off",
    }
    assert all(c["identical"] for c in checks.values()), checks
    _check_ratios(report)
    on_disk = json.loads((out / "bench.json").read_text())
    assert on_disk["ratios"] == report["ratios"] and on_disk["systems"].keys() == rows.keys()
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "trinityx-token" in (out / "bench.txt").read_text()
    for t in report["targets"]:
        if t["metric"] != "peak_mb":
            ref = "vs_base" if t["ref"] == "base" else "vs_trinityx_token"
            assert t["ratio"] == report["ratios"][ref][t["system"]][t["metric"]]
        else:
            assert t["ratio"] is None and t["met"] is None  # no memory probe in this run


def test_memory_probe_in_subprocess(cache_dir, tmp_path):
    report = main(
        [
            *vars_to_argv(cache_dir, tmp_path),
            "--systems",
            "base,trinityx-token",
            "--batch-sizes",
            "1",
        ]
    )
    rows = report["systems"]
    for row in rows.values():
        assert (
            row["peak_mb"] > 0 and "fresh spawn process" in row["how"] and "memory_error" not in row
        )
    assert report["ratios"]["vs_base"]["trinityx-token"]["peak_mb"] == pytest.approx(
        rows["trinityx-token"]["peak_mb"] / rows["base"]["peak_mb"]
    )
    _check_ratios(report)


def vars_to_argv(cache_dir, tmp_path) -> list[str]:
    return [
        "--backbone",
        "tiny-random-llama",
        "--cache-dir",
        str(cache_dir),
        "--repeats",
        "1",
        "--new-tokens",
        "2",
        "--prompt-tokens",
        "8",
        "--out",
        str(tmp_path / "mem"),
    ]


def test_ratios_and_targets_are_pure_arithmetic():
    rows = {
        "base": {
            "available": True,
            "prefill_ms": 10.0,
            "decode_ms_b1": 20.0,
            "peak_mb": 100.0,
            "params": 10,
            "param_bytes": 40,
        },
        "trinityx-token": {
            "available": True,
            "prefill_ms": 12.0,
            "decode_ms_b1": 24.0,
            "peak_mb": 105.0,
            "params": 11,
            "param_bytes": 44,
        },
        "xlora": {
            "available": True,
            "prefill_ms": 30.0,
            "decode_ms_b1": 96.0,
            "peak_mb": None,
            "params": 11,
            "param_bytes": 44,
        },
        "h3fusion": {"available": False, "error": "x"},
    }
    r = compute_ratios(rows, [1])
    assert r["vs_base"]["trinityx-token"]["decode_ms_b1"] == pytest.approx(1.2)
    assert r["vs_trinityx_token"]["xlora"]["decode_ms_b1"] == pytest.approx(4.0)
    assert "peak_mb" not in r["vs_base"]["xlora"] and "h3fusion" not in r["vs_base"]
    assert set(ratio_metrics([1])) >= {"prefill_ms", "decode_ms_b1", "peak_mb", "params"}
    t = {x["target"]: x for x in evaluate_targets(rows, r)}
    assert t["token-routing decode latency <= 1.25x base"]["met"] is True
    assert t["TrinityX (token) peak memory <= 1.10x base"]["met"] is True
    assert t["X-LoRA decode latency >= 2x TrinityX"]["met"] is True
    assert t["H3Fusion-style memory >= 1.7x TrinityX"]["met"] is None


def test_prompts_have_the_requested_length(tiny_backbone):
    ids = make_prompts(tiny_backbone.tokenizer, 3, 40)
    assert ids.shape == (3, 40) and ids.dtype == torch.long
    assert not torch.equal(ids[0], ids[1])
    with pytest.raises(ValueError, match="unknown system"):
        run_bench(_args("/nonexistent", "/tmp/x", "--systems", "base,nope"))


def test_unfolded_sequence_system_is_opt_in_and_agrees(cache_dir, tmp_path):
    """The fused path that folding replaces can be timed beside it (--systems), same tokens."""
    names = "base,trinityx-sequence,trinityx-sequence-unfolded"
    report = run_bench(
        _args(cache_dir, tmp_path / "b", "--no-memory", "--systems", names, "--new-tokens", "9")
    )
    rows = report["systems"]
    assert list(rows) == names.split(",") and all(r["available"] for r in rows.values())
    assert "fold=False" in rows["trinityx-sequence-unfolded"]["note"]
    assert report["checks"]["sequence_folded_vs_unfolded"]["identical"]


def test_separate_token_system_is_opt_in_and_unshared(cache_dir, tmp_path):
    """Token routing without sibling sharing can be timed beside the default (--systems)."""
    names = "base,trinityx-token,trinityx-token-separate"
    report = run_bench(
        _args(cache_dir, tmp_path / "b", "--no-memory", "--systems", names, "--new-tokens", "9")
    )
    rows = report["systems"]
    assert list(rows) == names.split(",") and all(r["available"] for r in rows.values())
    assert "siblings unshared" in rows["trinityx-token-separate"]["note"]
    assert report["checks"]["token_siblings_shared_vs_separate"]["identical"]
