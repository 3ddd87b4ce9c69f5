"""How far a pairwise judge can be trusted: agreement with GPT-4, calibration, win-rate error.

``evaluate_pairs`` turns the judge's P(output_2 better) on GPT-4-annotated pairs into the numbers
the helpfulness judge's report states: agreement on decided pairs beside "the longer answer wins"
on the same pairs, a reliability table (predicted win probability vs GPT-4's observed rate per
bin, with ECE and Brier), and per generator the GPT-4 win rate, the judge's soft (mean P) and hard
(share of P >= 0.5) win rates and their errors. ``reliability_png`` and ``report_markdown`` render
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trinityx.eval.metrics import lc_win_rate, win_rate


def reliability_table(p: np.ndarray, target: np.ndarray, n_bins: int = 10) -> dict:
    """Equal-width bins of predicted P: mean prediction, mean target, count; ECE and Brier."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        m = which == b
        if not m.any():
            bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": 0})
            continue
        pred, obs = float(p[m].mean()), float(target[m].mean())
        ece += m.mean() * abs(pred - obs)
        bins.append(
            {"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
             "predicted": pred, "observed": obs}
        )  # fmt: skip
    return {"bins": bins, "ece": float(ece), "brier": float(((p - target) ** 2).mean())}


def _error_summary(errors: Sequence[float]) -> dict:
    e = np.abs(np.asarray(errors, dtype=np.float64))
    return {
        "median": float(np.median(e)),
        "mean": float(e.mean()),
        "max": float(e.max()),
        "within_5": int((e <= 5.0).sum()),
        "n_models": int(e.size),
    }


def evaluate_pairs(
    p: np.ndarray,
    pref: np.ndarray,
    len_1: Sequence[int],
    len_2: Sequence[int],
    generators: Sequence[str],
) -> dict:
    """Agreement, "longer wins", reliability and per-generator win rates for one held-out view.

    ``p``: judge P(output_2 better); ``pref``: GPT-4 preferences in [1, 2] (1.5 = tie).
    """
    p, pref = np.asarray(p, np.float64), np.asarray(pref, np.float64)
    decided = pref != 1.5
    y = pref > 1.5
    longer = np.sign(np.asarray(len_2) - np.asarray(len_1))
    longer_hit = np.where(longer == 0, 0.5, (longer > 0) == y)
    gens = np.asarray(generators)
    l1, l2 = np.asarray(len_1), np.asarray(len_2)
    per_gen = {}
    for g in sorted(set(gens.tolist())):
        m = gens == g
        gpt4 = win_rate(pref[m].tolist())
        soft, hard = float(p[m].mean() * 100), float((p[m] >= 0.5).mean() * 100)
        lc_gpt4 = lc_win_rate(pref[m].tolist(), l2[m].tolist(), l1[m].tolist())
        lc_judge = lc_win_rate((1.0 + p[m]).tolist(), l2[m].tolist(), l1[m].tolist())
        per_gen[g] = {
            "gpt4": gpt4, "judge_soft": soft, "judge_hard": hard,
            "error_soft": soft - gpt4, "error_hard": hard - gpt4,
            "lc_gpt4": lc_gpt4, "lc_judge_soft": lc_judge, "error_lc": lc_judge - lc_gpt4,
            "agreement": float(((p[m] >= 0.5) == y[m])[decided[m]].mean()),
            "longer_wins_agreement": float(longer_hit[m][decided[m]].mean()),
            "n": int(m.sum()),
        }  # fmt: skip
    return {
        "agreement": float(((p >= 0.5) == y)[decided].mean()),
        "longer_wins_agreement": float(longer_hit[decided].mean()),
        "always_output_2_agreement": float(y[decided].mean()),
        "n": int(len(p)),
        "n_decided": int(decided.sum()),
        "reliability": reliability_table(p, pref - 1.0),
        "per_generator": per_gen,
        "winrate_abs_error_soft": _error_summary([v["error_soft"] for v in per_gen.values()]),
        "winrate_abs_error_hard": _error_summary([v["error_hard"] for v in per_gen.values()]),
        "lc_winrate_abs_error": _error_summary([v["error_lc"] for v in per_gen.values()]),
    }


def reliability_png(view: dict, path: str | Path, title: str) -> Path:
    """Reliability diagram: GPT-4's observed rate vs the judge's predicted P per bin (+ counts)."""
    from trinityx.eval.plots import plt

    bins = [b for b in view["reliability"]["bins"] if b["n"]]
    fig, (ax, axn) = plt.subplots(
        2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", label="judge")
    ax.set_ylabel("GPT-4: share output_2 better")
    ax.set_title(f"{title}\nECE={view['reliability']['ece']:.3f}  "
                 f"Brier={view['reliability']['brier']:.3f}  n={view['n']}", fontsize=9)  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    ax.set_ylim(0, 1)
    axn.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["n"] for b in bins], width=0.09)
    axn.set_xlabel("judge: predicted P(output_2 better)")
    axn.set_ylabel("pairs")
    axn.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def report_markdown(meta: dict, command: str) -> str:
    """report.md: headline agreement vs "longer wins", and the win-rate error per held-out model."""
    rep, m = meta["report"], meta["metrics"]
    lines = [
        f"# helpfulness judge ({meta['encoder']}, seed {meta['seed']})",
        "",
        f"Command: `{command}`",
        "",
        "| held-out view | agreement with GPT-4 | longer answer wins | always output_2 | decided pairs |",
        "|---|---|---|---|---|",
    ]
    for name, v in rep.items():
        lines.append(
            f"| {name.replace('_', ' ')} | {100 * v['agreement']:.1f}% | "
            f"{100 * v['longer_wins_agreement']:.1f}% | {100 * v['always_output_2_agreement']:.1f}% "
            f"| {v['n_decided']:,} |"
        )
    head = rep["heldout_generators"]
    lines += [
        "",
        f"Held-out models: {', '.join(m['heldout_generators'])}. Preference mode used by the "
        f"harness: **{meta['preference_mode']}**. Calibration on held-out models: "
        f"ECE {head['reliability']['ece']:.3f} (reliability.png).",
        "",
        "| held-out model | GPT-4 win rate | judge soft | error | judge hard | error | GPT-4 LC "
        "| judge LC | error | agreement | longer wins |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g, v in head["per_generator"].items():
        lines.append(
            f"| {g} | {v['gpt4']:.1f} | {v['judge_soft']:.1f} | {v['error_soft']:+.1f} | "
            f"{v['judge_hard']:.1f} | {v['error_hard']:+.1f} | {v['lc_gpt4']:.1f} | "
            f"{v['lc_judge_soft']:.1f} | {v['error_lc']:+.1f} | {100 * v['agreement']:.1f}% | "
            f"{100 * v['longer_wins_agreement']:.1f}% |"
        )
    for key, what in (("winrate_abs_error_soft", "soft win rate"),
                      ("winrate_abs_error_hard", "hard win rate"),
                      ("lc_winrate_abs_error", "LC win rate (soft)")):  # fmt: skip
        s = head[key]
        lines.append(
            f"\n|error| of the {what}: median {s['median']:.1f}, max {s['max']:.1f}; within ±5 "
            f"points for {s['within_5']} of {s['n_models']} models."
        )
    return "\n".join(lines) + "\n"
