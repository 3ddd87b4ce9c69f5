"""Train and validate the ``helpfulness`` judge on GPT-4's AlpacaEval annotations of many models.

Validation holds out whole *generators* (a seeded ``GroupShuffleSplit`` over model names) and,
separately, instructions: the head is fitted only on pairs whose generator and instruction are
both on the training side, so one fit yields three held-out views:

* ``heldout_generators``: every pair of the held-out models (models never seen in training),
  which is how the judge meets a new system; the per-model win-rate error is measured here;
* ``heldout_generators_and_instructions``: the strict corner (neither seen);
* ``heldout_instructions``: training models on unseen instructions.

Agreement counts only pairs GPT-4 decided (ties dropped, as the ``pairwise`` judge does); the
"longer answer wins" baseline is scored on exactly the same pairs (equal length = 1/2).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from tqdm import tqdm

from trinityx.eval.judges.local.calibration import evaluate_pairs, reliability_png, report_markdown
from trinityx.eval.judges.local.data import (
    PairwiseAnnotation,
    read_generator_annotations,
    read_pairwise_annotations,
)
from trinityx.eval.judges.local.encoders import Encoder
from trinityx.eval.judges.local.fitting import subsample
from trinityx.eval.judges.local.folder import base_meta
from trinityx.eval.judges.local.helpfulness import (
    HelpfulnessJudge,
    content_scores,
    debiased,
    feature_names,
    pair_v2_features,
)
from trinityx.eval.judges.local.text_features import surface_features
from trinityx.eval.judges.local.trees import TreeEnsemble

MORE_FILE = "alpaca_eval/gpt4_annotations_more.jsonl.gz"
PER_MODEL_DIR = "alpaca_eval/gpt4_annotations_vs_davinci003"
GBM_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 40}


def load_annotations(data_dir: Path) -> tuple[list[PairwiseAnnotation], list[Path]]:
    """Every judged pair: the 43-model file plus the per-model files (their stem = generator)."""
    files = []
    anns: list[PairwiseAnnotation] = []
    if (data_dir / MORE_FILE).is_file():
        files.append(data_dir / MORE_FILE)
        anns += read_generator_annotations(data_dir / MORE_FILE)
    folder = data_dir / PER_MODEL_DIR
    per_model = sorted(
        f for f in folder.glob("*.json") if not f.name.endswith("_model_outputs.json")
    )
    for f in per_model:
        anns += read_pairwise_annotations(f)
    files += per_model
    anns = [a for a in anns if a.preference is not None]
    if not anns:
        raise FileNotFoundError(
            f"{data_dir}: no GPT-4 annotations ({MORE_FILE} or {PER_MODEL_DIR}/<model>.json)"
        )
    return anns, files


def generator_split(generators: list[str], n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) with every generator wholly on one side; ``n_test`` models held out."""
    n_gen = len(set(generators))
    if not 0 < n_test < n_gen:
        raise ValueError(f"n_test_generators={n_test}: need 1..{n_gen - 1} of {n_gen} generators")
    gss = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    return next(gss.split(np.zeros(len(generators)), groups=generators))


class _Data:
    """Columns, labels and per-row feature inputs of all annotations (computed once)."""

    def __init__(self, anns: list[PairwiseAnnotation], enc: Encoder) -> None:
        self.ins = [a.instruction for a in anns]
        self.o1, self.o2 = [a.output_1 for a in anns], [a.output_2 for a in anns]
        self.gen = np.array([a.generator for a in anns])
        self.pref = np.array([a.preference for a in anns], dtype=np.float64)
        self.y = (self.pref > 1.5).astype(int)
        self.decided = self.pref != 1.5
        self.e_i, self.e_1, self.e_2 = (enc(c) for c in (self.ins, self.o1, self.o2))
        chunks = [range(s, min(s + 2000, len(anns))) for s in range(0, len(anns), 2000)]
        fwd, rev = [], []
        for r in tqdm(chunks, desc="surface features", disable=len(chunks) < 3):
            cols = [[c[k] for k in r] for c in (self.ins, self.o1, self.o2)]
            fwd.append(surface_features(*cols))
            rev.append(surface_features(cols[0], cols[2], cols[1]))
        self.surf, self.surf_rev = np.vstack(fwd), np.vstack(rev)  # (N, 67) each

    def diffs(self, idx: np.ndarray) -> np.ndarray:
        """Antisymmetric inputs of the linear content head: (n, 2d)."""
        d = self.e_2[idx] - self.e_1[idx]
        return np.hstack([d, self.e_i[idx] * d])

    def features(self, idx: np.ndarray, w: np.ndarray, proj: np.ndarray, s=None) -> tuple:
        """Forward and swapped feature matrices for rows ``idx`` (scores from ``w`` unless given)."""
        if s is None:
            s = (content_scores(self.e_i[idx], self.e_1[idx], w),
                 content_scores(self.e_i[idx], self.e_2[idx], w))  # fmt: skip
        e = (self.e_i[idx], self.e_1[idx], self.e_2[idx])
        fwd = pair_v2_features(self.surf[idx], e[0], e[1], e[2], s[0], s[1], proj)
        rev = pair_v2_features(self.surf_rev[idx], e[0], e[2], e[1], s[1], s[0], proj)
        return fwd, rev


def _fit_linear(data: _Data, idx: np.ndarray, c: float, seed: int) -> np.ndarray:
    """Bradley-Terry head on embedding differences, symmetric by construction (no intercept)."""
    x = data.diffs(idx)
    y = data.y[idx]
    lr = LogisticRegression(C=c, fit_intercept=False, max_iter=500, random_state=seed)
    return lr.fit(np.vstack([x, -x]), np.concatenate([y, 1 - y])).coef_[0].astype(np.float32)


def fit_helpfulness(
    data: _Data, idx: np.ndarray, seed: int, n_proj: int, c: float, gbm: dict
) -> tuple[TreeEnsemble, np.ndarray, np.ndarray]:
    """Fit the linear content head, the projection and the trees on the decided rows of ``idx``."""
    idx = idx[data.decided[idx]]
    w = _fit_linear(data, idx, c, seed)
    # out-of-fold content scores for the trees' training rows (folds by generator), so the trees
    # learn how far to trust the linear head on models it has not seen
    s1, s2 = np.zeros(len(idx), np.float32), np.zeros(len(idx), np.float32)
    n_folds = min(5, len(set(data.gen[idx].tolist())))
    if n_folds >= 2:
        for f_tr, f_va in GroupKFold(n_splits=n_folds).split(idx, groups=data.gen[idx]):
            wf = _fit_linear(data, idx[f_tr], c, seed)
            s1[f_va] = content_scores(data.e_i[idx[f_va]], data.e_1[idx[f_va]], wf)
            s2[f_va] = content_scores(data.e_i[idx[f_va]], data.e_2[idx[f_va]], wf)
    else:
        s1, s2 = (content_scores(data.e_i[idx], e[idx], w) for e in (data.e_1, data.e_2))
    answers = np.vstack([data.e_1[idx], data.e_2[idx]])
    k = min(n_proj, answers.shape[1], len(answers))
    proj = np.zeros((0, answers.shape[1]), np.float32)  # (k, d); k = 0: no projection features
    if k > 0:
        proj = PCA(n_components=k, random_state=seed).fit(answers).components_.astype(np.float32)
    fwd, rev = data.features(idx, w, proj, (s1, s2))
    y = data.y[idx]
    clf = HistGradientBoostingClassifier(**gbm, random_state=seed, early_stopping=False)
    clf.fit(np.vstack([fwd, rev]), np.concatenate([y, 1 - y]))
    return TreeEnsemble.from_sklearn(clf), w, proj


def train_helpfulness(
    data_dir: Path,
    enc: Encoder,
    max_rows: int | None,
    seed: int,
    n_test_generators: int = 8,
    test_frac: float = 0.2,
    n_proj: int = 8,
    c: float = 1.0,
    refit_all: bool = True,
    gbm: dict | None = None,
    train_generators: list[str] | None = None,
) -> HelpfulnessJudge:
    """Fit on (training generators x training instructions), measure the held-out views, refit.

    ``train_generators`` (default: all but the held-out ones) narrows the training pool, e.g. to
    the models whose texts are already embedded on a slow CPU; the held-out models are chosen
    first, over every generator, so the choice does not depend on it.

    Returns an unsaved judge whose ``meta["report"]`` holds every held-out number and whose
    ``meta["metrics"]`` the headline ones.
    """
    gbm = {**GBM_PARAMS, **(gbm or {})}
    anns, files = load_annotations(data_dir)
    anns = [anns[i] for i in subsample(len(anns), max_rows, seed)]
    gens = [a.generator for a in anns]
    _, te_g = generator_split(gens, n_test_generators, seed)
    held = {gens[i] for i in te_g}
    if train_generators is not None:
        bad = sorted(set(train_generators) & held) or sorted(set(train_generators) - set(gens))
        if bad:
            raise ValueError(
                f"train_generators: {bad} are held out or unknown; held out: {sorted(held)}"
            )
        pool = held | set(train_generators)
        anns = [a for a in anns if a.generator in pool]
    data = _Data(anns, enc)
    held_gen = np.isin(data.gen, sorted(held))
    gi = GroupShuffleSplit(n_splits=1, test_size=test_frac, random_state=seed)
    _, te_i = next(gi.split(np.zeros(len(anns)), groups=data.ins))
    held_ins = np.zeros(len(anns), bool)
    held_ins[te_i] = True
    fit_idx = np.flatnonzero(~held_gen & ~held_ins)
    trees, w, proj = fit_helpfulness(data, fit_idx, seed, n_proj, c, gbm)
    views = {
        "heldout_generators": held_gen,
        "heldout_generators_and_instructions": held_gen & held_ins,
        "heldout_instructions": ~held_gen & held_ins,
    }
    report: dict = {}
    for name, mask in views.items():
        idx = np.flatnonzero(mask)
        fwd, rev = data.features(idx, w, proj)
        p = debiased(trees.predict_proba(fwd), trees.predict_proba(rev))
        lengths = ([len(data.o1[i]) for i in idx], [len(data.o2[i]) for i in idx])
        report[name] = evaluate_pairs(p, data.pref[idx], *lengths, data.gen[idx].tolist())
    head = report["heldout_generators"]
    metrics = {
        "heldout_generator_agreement": head["agreement"],
        "longer_wins_agreement": head["longer_wins_agreement"],
        "margin_over_longer_wins": head["agreement"] - head["longer_wins_agreement"],
        "heldout_instruction_agreement": report["heldout_instructions"]["agreement"],
        "winrate_abs_error_soft": head["winrate_abs_error_soft"],
        "winrate_abs_error_hard": head["winrate_abs_error_hard"],
        "n_test": head["n_decided"],
        "n_train": int(data.decided[fit_idx].sum()),
        "heldout_generators": sorted(set(data.gen[held_gen].tolist())),
    }
    # the harness's default: whichever of soft (1 + p) or hard (1 or 2) preferences gave the
    # smaller median win-rate error on the held-out models
    soft_better = (
        head["winrate_abs_error_soft"]["median"] <= head["winrate_abs_error_hard"]["median"]
    )
    if refit_all:
        trees, w, proj = fit_helpfulness(data, np.arange(len(anns)), seed, n_proj, c, gbm)
    meta = base_meta(
        "helpfulness",
        enc,
        files,
        data_dir,
        metrics=metrics,
        report=report,
        split="by generator (seeded GroupShuffleSplit over models) and by instruction",
        preference_mode="soft" if soft_better else "hard",
        n_test_generators=n_test_generators,
        train_generators=train_generators,
        fit_generators=sorted(set(data.gen[fit_idx].tolist())),
        test_frac=test_frac,
        n_proj=n_proj,
        C=c,
        gbm=gbm,
        seed=seed,
        max_rows=max_rows,
        refit_all=refit_all,
        n_fit=int(data.decided.sum() if refit_all else data.decided[fit_idx].sum()),
        features=feature_names(proj.shape[0]),
    )
    return HelpfulnessJudge(meta, trees, w, proj, enc)


def report_files(meta: dict, command: str) -> dict[str, bytes]:
    """report.json, report.md and reliability.png (held-out generators) for the artifact folder."""
    with tempfile.TemporaryDirectory() as tmp:
        png = reliability_png(
            meta["report"]["heldout_generators"],
            Path(tmp) / "reliability.png",
            "helpfulness judge on held-out models",
        ).read_bytes()
    body = {"command": command, "metrics": meta["metrics"], "report": meta["report"]}
    return {
        "report.json": (json.dumps(body, indent=2) + "\n").encode(),
        "report.md": report_markdown(meta, command).encode(),
        "reliability.png": png,
    }
