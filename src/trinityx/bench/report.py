"""Ratios, targets, the text table and the bar chart of `trinityx bench` (pure functions of the
report dict, so they can be recomputed from a saved bench.json)."""

from __future__ import annotations

from pathlib import Path

REFS = {"vs_base": "base", "vs_trinityx_token": "trinityx-token"}
# (label, system, metric, reference key in REFS, op, threshold): issue 5's targets
TARGETS = [
    (
        "token-routing decode latency <= 1.25x base",
        "trinityx-token",
        "decode",
        "vs_base",
        "<=",
        1.25,
    ),
    (
        "sequence-routing decode latency <= 1.10x base",
        "trinityx-sequence",
        "decode",
        "vs_base",
        "<=",
        1.10,
    ),
    ("merged decode latency <= 1.02x base", "trinityx-merged", "decode", "vs_base", "<=", 1.02),
    (
        "TrinityX (token) peak memory <= 1.10x base",
        "trinityx-token",
        "peak_mb",
        "vs_base",
        "<=",
        1.10,
    ),
    (
        "TrinityX (sequence) peak memory <= 1.10x base",
        "trinityx-sequence",
        "peak_mb",
        "vs_base",
        "<=",
        1.10,
    ),
    (
        "H3Fusion-style memory >= 1.7x TrinityX",
        "h3fusion",
        "peak_mb",
        "vs_trinityx_token",
        ">=",
        1.7,
    ),
    (
        "H3Fusion-style decode latency >= 1.7x TrinityX",
        "h3fusion",
        "decode",
        "vs_trinityx_token",
        ">=",
        1.7,
    ),
    ("X-LoRA decode latency >= 2x TrinityX", "xlora", "decode", "vs_trinityx_token", ">=", 2.0),
]


def ratio_metrics(batch_sizes: list[int]) -> list[str]:
    """Metrics where lower is better, so system / reference is a cost ratio."""
    dec = [f"decode_ms_b{b}" for b in batch_sizes] + [f"decode_cpu_ms_b{b}" for b in batch_sizes]
    return ["prefill_ms", *dec, "peak_mb", "params", "param_bytes"]


def compute_ratios(systems: dict[str, dict], batch_sizes: list[int]) -> dict:
    """{"vs_base": {system: {metric: system / base}}, "vs_trinityx_token": {...}} of medians."""
    out: dict[str, dict] = {}
    for key, ref_name in REFS.items():
        ref = systems.get(ref_name, {})
        table: dict[str, dict] = {}
        for name, row in systems.items():
            if not row.get("available") or not ref.get("available"):
                continue
            table[name] = {
                m: row[m] / ref[m]
                for m in ratio_metrics(batch_sizes)
                if row.get(m) is not None and ref.get(m) not in (None, 0)
            }
        out[key] = table
    return out


def _decode_key(ratios: dict) -> str:
    keys = {m for t in ratios.values() for r in t.values() for m in r if m.startswith("decode_ms")}
    return "decode_ms_b1" if "decode_ms_b1" in keys else min(keys, default="decode_ms_b1")


def evaluate_targets(systems: dict[str, dict], ratios: dict) -> list[dict]:
    """One entry per target: measured ratio (None if not measured) and met (None if unknown)."""
    dec = _decode_key(ratios)
    out = []
    for label, name, metric, ref, op, thr in TARGETS:
        metric = dec if metric == "decode" else metric
        value = ratios.get(ref, {}).get(name, {}).get(metric)
        met = None if value is None else (value <= thr if op == "<=" else value >= thr)
        out.append(
            {
                "target": label,
                "system": name,
                "metric": metric,
                "ref": REFS[ref],
                "ratio": value,
                "threshold": thr,
                "op": op,
                "met": met,
            }
        )
    return out


def _f(x, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def format_table(report: dict) -> str:
    """Fixed-width table: one row per system, medians and ratios vs base / vs TrinityX token."""
    systems, ratios = report["systems"], report["ratios"]
    bs = report["config"]["batch_sizes"]
    bss = [int(b) for b in str(bs).split(",")]
    dec = _decode_key(ratios)
    head = (
        f"{'system':<18} {'params M':>9} {'param MB':>9} {'peak MB':>8} {'prefill ms':>10} "
        + " ".join(f"{f'ms/step b{b}':>12} {f'tok/s b{b}':>9}" for b in bss)
        + f" {'x base':>7} {'x TX-tok':>8} {'mem x base':>10} {'mem x TX':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, row in systems.items():
        if not row.get("available"):
            lines.append(f"{name:<18} unavailable: {row.get('error')}")
            continue
        vb = ratios["vs_base"].get(name, {})
        vt = ratios["vs_trinityx_token"].get(name, {})
        cells = " ".join(
            f"{_f(row.get(f'decode_ms_b{b}')):>12} {_f(row.get(f'decode_tps_b{b}')):>9}"
            for b in bss
        )
        lines.append(
            f"{name:<18} {row['params'] / 1e6:>9.2f} {row['param_bytes'] / 2**20:>9.1f} "
            f"{_f(row.get('peak_mb')):>8} {_f(row.get('prefill_ms')):>10} {cells} "
            f"{_f(vb.get(dec), '{:.3f}'):>7} {_f(vt.get(dec), '{:.3f}'):>8} "
            f"{_f(vb.get('peak_mb'), '{:.3f}'):>10} {_f(vt.get('peak_mb'), '{:.3f}'):>8}"
        )
    env = report["env"]
    lines.append(
        f"ratios: {dec} and peak_mb medians; device {env['device']}, {env['threads']} threads, "
        f"load avg before {env['loadavg_before'][0]:.2f} after {env['loadavg_after'][0]:.2f}"
    )
    lines.append("  " + floor_line(systems))
    for t in report["targets"]:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        lines.append(f"  [{mark}] {t['target']}: {_f(t['ratio'], '{:.3f}')}")
    for k, c in report.get("checks", {}).items():
        lines.append(f"  check {k}: {'identical' if c['identical'] else 'DIFFERENT'} ({c['what']})")
    return "\n".join(lines)


def floor_line(systems: dict[str, dict]) -> str:
    """One line saying whether every system held its weights alike (same dtype, in memory)."""
    held = {n: r["weights"] for n, r in systems.items() if r.get("available") and "weights" in r}
    if not held:
        return "weights: not recorded"
    dtypes = sorted({d for w in held.values() for d in w["dtypes"]})
    mapped = {n: w["file_mapped_bytes"] for n, w in held.items() if w["file_mapped_bytes"]}
    if len(dtypes) == 1 and not mapped:
        return f"floor: every system holds its weights in memory, all {dtypes[0]}"
    return f"floor NOT level: dtypes {dtypes}, file-mapped bytes {mapped or 'none'}"


def plot(report: dict, path: str | Path) -> Path:
    """2x2 bar chart (prefill, decode at each batch, peak memory, parameter bytes) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {n: r for n, r in report["systems"].items() if r.get("available")}
    bss = [int(b) for b in str(report["config"]["batch_sizes"]).split(",")]
    panels = [("prefill_ms", "prefill (ms, batch 1)")]
    panels += [(f"decode_ms_b{b}", f"decode ms/step, batch {b}") for b in bss]
    panels += [("peak_mb", "peak memory (MB)"), ("param_bytes", "weights (MB)")]
    cols = 2
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 3.6 * nrows), squeeze=False)
    names = list(rows)
    colors = [
        "#555555" if n == "base" else "#1f77b4" if n.startswith("trinityx") else "#d62728"
        for n in names
    ]
    for ax, (metric, title) in zip(axes.flat, panels, strict=False):
        vals = [rows[n].get(metric) or 0.0 for n in names]
        if metric == "param_bytes":
            vals = [v / 2**20 for v in vals]
        bars = ax.bar(range(len(names)), vals, color=colors)
        base = rows.get("base", {}).get(metric)
        for bar, v in zip(bars, vals, strict=True):
            if base and v:
                ref = base / 2**20 if metric == "param_bytes" else base
                ax.annotate(
                    f"{v / ref:.2f}x",
                    (bar.get_x() + bar.get_width() / 2, v),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"TrinityX vs base and prior MoEs ({report['config']['backbone']}, "
        f"{report['env']['device']}); labels: x base",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
