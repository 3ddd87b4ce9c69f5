"""The pairwise judge (the older AlpacaEval annotator stand-in): MiniLM + logistic regression
on GPT-4's annotations vs davinci-003, held out by instruction.

``helpfulness`` (``train_helpfulness``) supersedes it as the default; it stays for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from trinityx.eval.judges.local.data import read_pairwise_annotations
from trinityx.eval.judges.local.encoders import Encoder
from trinityx.eval.judges.local.features import build_features
from trinityx.eval.judges.local.fitting import fit_head, group_split, select_c, subsample
from trinityx.eval.judges.local.folder import base_meta
from trinityx.eval.judges.local.trained import TrainedJudge
from trinityx.eval.metrics import win_rate


def train_pairwise(
    data_dir: Path,
    enc: Encoder,
    max_rows: int | None,
    seed: int,
    c: float | None = None,
    test_frac: float = 0.2,
    refit_all: bool = True,
    swap_augment: bool = False,
) -> TrainedJudge:
    """pairwise: AlpacaEval GPT-4 annotations vs davinci-003, held out by instruction.

    Exact ties are dropped for fitting. output_1 is always the davinci-003 reference, as at
    evaluation time, so by default the head may learn the reference's prior (GPT-4 prefers it in
    about half the pairs); ``swap_augment`` adds swapped copies (label flipped) for a
    position-symmetric head instead, which on this data over-states win rates by ~6-8 points.
    """
    folder = data_dir / "alpaca_eval/gpt4_annotations_vs_davinci003"
    files = sorted(f for f in folder.glob("*.json") if not f.name.endswith("_model_outputs.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no annotation files (<model>.json with preference)")
    anns = [
        (f.stem, a) for f in files for a in read_pairwise_annotations(f) if a.preference is not None
    ]
    gen, anns = zip(*[anns[i] for i in subsample(len(anns), max_rows, seed)], strict=True)
    ins = [a.instruction for a in anns]
    o1, o2 = [a.output_1 for a in anns], [a.output_2 for a in anns]
    pref = np.array([a.preference for a in anns])
    y = (pref > 1.5).astype(int)
    tr, te = group_split(ins, test_frac, seed)

    def fit(idx: np.ndarray, cc: float) -> LogisticRegression:
        idx = idx[pref[idx] != 1.5]
        cols = [[col[i] for i in idx] for col in (ins, o1, o2)]
        x, yy = build_features("pair_v1", enc, cols), y[idx]
        if swap_augment:
            x = np.vstack([x, build_features("pair_v1", enc, (cols[0], cols[2], cols[1]))])
            yy = np.concatenate([yy, 1 - yy])
        return fit_head(x, yy, cc, seed)

    def features(idx: np.ndarray) -> np.ndarray:
        return build_features("pair_v1", enc, [[col[i] for i in idx] for col in (ins, o1, o2)])

    c_search: dict[str, float] = {}
    if c is None:

        def score(cc: float, f: np.ndarray, v: np.ndarray) -> float:
            v = v[pref[v] != 1.5]
            return (fit(f, cc).predict(features(v)) == y[v]).mean()

        c, c_search = select_c(tr, ins, seed, score)
    clf = fit(tr, c)
    cols_te = [[col[i] for i in te] for col in (ins, o1, o2)]
    prob = clf.predict_proba(features(te))[:, 1]
    decided = pref[te] != 1.5
    longer = np.sign([len(b) - len(a) for a, b in zip(cols_te[1], cols_te[2], strict=True)])
    metrics = {
        "heldout_agreement": float(((prob >= 0.5) == y[te])[decided].mean()),
        "longer_wins_agreement": float(
            np.where(longer == 0, 0.5, (longer > 0) == y[te])[decided].mean()
        ),
        "n_test": int(decided.sum()),
        "n_test_instructions": len({ins[i] for i in te}),
        "n_train": int((pref[tr] != 1.5).sum()),
        "heldout_winrate_judge": float(prob.mean() * 100),
        "heldout_winrate_gpt4": win_rate(pref[te].tolist()),
        "heldout_winrate_by_generator": {
            g: {
                "judge": float(prob[m].mean() * 100),
                "judge_hard": float((prob[m] >= 0.5).mean() * 100),
                "gpt4": win_rate(pref[te][m].tolist()),
            }
            for g in sorted(set(gen))
            if (m := np.array([gen[i] == g for i in te])).any()
        },
    }
    if refit_all:
        clf = fit(np.arange(len(anns)), c)
    meta = base_meta(
        "pairwise",
        enc,
        files,
        data_dir,
        metrics=metrics,
        split="by instruction",
        test_frac=test_frac,
        C=c,
        C_inner_accuracy=c_search,
        seed=seed,
        max_rows=max_rows,
        refit_all=refit_all,
        swap_augment=swap_augment,
    )
    return TrainedJudge(meta, clf, enc)
