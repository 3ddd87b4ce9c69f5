"""report.md of an explorer run: the table of points, the front, the dial, the recommendation."""

from __future__ import annotations

from trinityx.eval.explore.pareto import AXES

COLUMNS = [
    ("refusal", "refusal ↑"),
    ("over_refusal", "over-refusal ↓"),
    ("mc2", "MC2 ↑"),
    ("hh_accuracy", "hh-rlhf ↑"),
    ("spard_accuracy", "SPARD ↑"),
    ("win_rate", "WR ↑"),
]


def _f(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _weights(r: dict) -> str:
    if r["weights"] is None:
        return "router" + ("" if r["tau"] is None else f", τ={r['tau']:.2f}")
    return " / ".join(f"{v:.2f}" for v in r["weights"].values())


def explore_markdown(res: dict) -> str:
    rows, front, best = res["points"], set(res["front"]), res["recommended"]
    cols = [(k, t) for k, t in COLUMNS if any(k in r["metrics"] for r in rows)]
    names = " / ".join(res["experts"])
    lines = [
        f"# Trade-off map of `{res['model']}`",
        "",
        f"{len(rows)} points ({res['routing']} routing, weight mode {res['weight_mode']}), "
        f"sizes {res['limits']}, {res['seconds']:.0f} s in total. Axes: helpfulness = 100 − "
        "over-refusal (+ AlpacaEval WR when measured), harmlessness = mean(refusal, hh-rlhf, "
        "SPARD), honesty = TruthfulQA MC2; HHH = their mean. ★ = on the Pareto front.",
        "",
        f"| point | π ({names}) | "
        + " | ".join(t for _, t in cols)
        + " | helpful | harmless | honest | HHH |",
        "|---|---|" + "---:|" * (len(cols) + 4),
    ]
    for i, r in enumerate(rows):
        mark = (" ★" if i in front else "") + (" **just right**" if i == best else "")
        vals = [_f(r["metrics"].get(k)) for k, _ in cols]
        axes = [_f(r["axes"].get(a)) for a in (*AXES, "hhh")]
        lines.append(f"| {r['name']}{mark} | {_weights(r)} | " + " | ".join(vals + axes) + " |")
    lines += ["", "## What the map says", ""]
    router = res.get("router_on_front")
    if router is not None:
        lines.append(
            "- The calibrated router alone is **"
            + ("on" if router else "not on")
            + "** the Pareto front."
        )
    if res.get("router_mean_probs"):
        p = ", ".join(f"{k} {v:.2f}" for k, v in res["router_mean_probs"].items())
        lines.append(f"- The router's mean calibrated decision over the refusal prompts: {p}.")
    if best is not None:
        b = rows[best]
        lines.append(
            f"- Just right (best HHH score {b['axes']['hhh']:.1f}): **{b['name']}** "
            f"({_weights(b)})"
            + (
                f", saved as preset `{res['preset']}` in the artifact."
                if res.get("preset")
                else "."
            )
        )
    dial = [r for r in rows if r["kind"] == "dial"]
    if dial:
        pts = "; ".join(
            f"τ={r['tau']:.2f}: {_f(r['metrics'].get('refusal'))} / "
            f"{_f(r['metrics'].get('over_refusal'))}"
            for r in sorted(dial, key=lambda r: r["tau"])
        )
        lines.append(f"- Refusal dial (refusal / over-refusal %): {pts}.")
    lines += ["", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in res["figures"]]
    lines += ["", "Reproduce: `" + res["command"] + "`", ""]
    return "\n".join(lines)
