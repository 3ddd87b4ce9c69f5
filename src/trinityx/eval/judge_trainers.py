"""Trainers of the local judges, one per data source; each returns an unsaved ``TrainedJudge``.

* truth / info: TruthfulQA GPT-judge / GPT-info fine-tuning rows, held out by question;
* harm: SPARD BeaverTails safe/unsafe pairs, scored on the official test file;
* pairwise: AlpacaEval GPT-4 annotations vs davinci-003, held out by instruction.

Held-out metrics always come from a fit that never saw the test groups; ``refit_all`` then refits on
every row for the saved head. ``trinityx.eval.local_judges.train_judge`` picks the trainer by kind.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from trinityx.data.records import prompt_text
from trinityx.eval.benchmarks import (
    HH_RLHF_HARMLESS,
    TRUTHFULQA_CSV,
    read_hh_rlhf,
    read_truthfulqa_gen,
)
from trinityx.eval.judge_artifact import RECIPES, TrainedJudge, base_meta
from trinityx.eval.judge_data import (
    read_judge_finetune,
    read_pairwise_annotations,
    read_spard_pairs,
)
from trinityx.eval.judge_encoders import Encoder
from trinityx.eval.judge_features import RefTable, build_features
from trinityx.eval.judge_fitting import (
    binary_metrics,
    fit_head,
    group_split,
    select_c,
    subsample,
)
from trinityx.eval.metrics import pairwise_accuracy, win_rate


def train_qa(
    kind: str,
    data_dir: Path,
    enc: Encoder,
    max_rows: int | None,
    seed: int,
    c: float | None = None,
    test_frac: float = 0.2,
    refit_all: bool = True,
    use_references: bool | None = None,
) -> TrainedJudge:
    """truth / info: TruthfulQA GPT-judge fine-tuning rows, held out by question.

    ``use_references`` (default: on for truth, off for info, where it barely helps) adds the
    similarity of the answer to the question's TruthfulQA.csv reference answers (``RefTable``).
    """
    path = data_dir / f"truthfulqa/finetune_{kind}.jsonl"
    rows = read_judge_finetune(path)
    rows = [rows[i] for i in subsample(len(rows), max_rows, seed)]
    q, a = [r.question for r in rows], [r.answer for r in rows]
    y = np.array([r.label for r in rows])
    tr, te = group_split(q, test_frac, seed)
    if use_references is None:  # on for truth whenever the reference answers are there
        use_references = kind == "truth" and (data_dir / TRUTHFULQA_CSV).is_file()
    recipe, refs, files = RECIPES[kind], None, [path]
    if use_references:
        recipe, files = "qa_triplet_ref", [path, data_dir / TRUTHFULQA_CSV]
        refs = RefTable.build(read_truthfulqa_gen(data_dir, split="all"), enc)
    x = build_features(recipe, enc, (q, a), refs)
    c_search: dict[str, float] = {}
    if c is None:

        def score(cc: float, f: np.ndarray, v: np.ndarray) -> float:
            return (fit_head(x[f], y[f], cc, seed).predict(x[v]) == y[v]).mean()

        c, c_search = select_c(tr, q, seed, score)
    clf = fit_head(x[tr], y[tr], c, seed)
    metrics = binary_metrics(y[te], clf.predict_proba(x[te])[:, 1])
    metrics |= {"n_train": int(len(tr)), "n_test_questions": len({q[i] for i in te})}
    if refit_all:
        clf = fit_head(x, y, c, seed)
    meta = base_meta(
        kind,
        enc,
        files,
        data_dir,
        metrics=metrics,
        feature_recipe=recipe,
        split="by question",
        test_frac=test_frac,
        C=c,
        C_inner_accuracy=c_search,
        seed=seed,
        max_rows=max_rows,
        refit_all=refit_all,
        n_fit=int(len(y) if refit_all else len(tr)),
    )
    return TrainedJudge(meta, clf, enc, refs)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _first_sentences(
    prompts: list[str], responses: list[str], y: np.ndarray, min_chars: int = 15
) -> tuple[list[str], list[str], np.ndarray]:
    """Rows whose response is cut to its first sentence (only where that shortens it)."""
    keep = []
    for k, r in enumerate(responses):
        first = _SENTENCE_END.split(r.strip(), maxsplit=1)[0]
        if len(first) >= min_chars and first != r.strip():
            keep.append((k, first))
    return [prompts[k] for k, _ in keep], [f for _, f in keep], y[[k for k, _ in keep]]


def _concat(
    *parts: tuple[list[str], list[str], np.ndarray],
) -> tuple[list[str], list[str], np.ndarray]:
    return (
        [p for part in parts for p in part[0]],
        [r for part in parts for r in part[1]],
        np.concatenate([part[2] for part in parts]),
    )


def train_harm(
    data_dir: Path,
    enc: Encoder,
    max_rows: int | None,
    seed: int,
    c: float | None = None,
    use_hh_rlhf: bool = False,
    hh_eval_rows: int | None = 1000,
    refit_all: bool = True,
    first_sentence_augment: bool = True,
) -> TrainedJudge:
    """harm: SPARD BeaverTails pairs (safe -> 0, unsafe -> 1); official test file held out.

    SPARD's safe answers are long lecturing refusals, so a head fitted on them alone calls any
    short reply, a terse "I'm sorry, I can't help with that." included, unsafe. With
    ``first_sentence_augment`` every response's first sentence is added with the same label, so
    length stops being a cue; ``heldout_accuracy_first_sentence`` checks this on the test file.

    ``use_hh_rlhf`` adds hh-rlhf harmless chosen (0) / rejected (1) final turns as weak labels; it
    is off by default because that file is also the hh-rlhf harmless *evaluation* set, which the
    judge is then scored on as a held-out pairwise check.
    """
    f_tr = data_dir / "beavertails/spard_beavertails_pairs_train.jsonl"
    f_te = data_dir / "beavertails/spard_beavertails_pairs_test.jsonl"
    test = read_spard_pairs(f_te)
    test_prompts = {prompt_text(p.messages) for p in test}
    train = [p for p in read_spard_pairs(f_tr) if prompt_text(p.messages) not in test_prompts]
    train = [train[i] for i in subsample(len(train), max_rows, seed)]
    files = [f_tr, f_te]
    f_hh = data_dir / HH_RLHF_HARMLESS
    if use_hh_rlhf:
        train += read_hh_rlhf(f_hh, limit=max_rows)
        files.append(f_hh)

    def rows(pairs: list) -> tuple[list[str], list[str], np.ndarray]:
        pr = [prompt_text(p.messages) for p in pairs]
        return (
            pr + pr,
            [p.chosen for p in pairs] + [p.rejected for p in pairs],
            np.repeat([0, 1], len(pairs)),
        )

    (p_tr, r_tr, y_tr), (p_te, r_te, y_te) = rows(train), rows(test)
    short_te = _first_sentences(p_te, r_te, y_te)
    if first_sentence_augment:
        p_tr, r_tr, y_tr = _concat((p_tr, r_tr, y_tr), _first_sentences(p_tr, r_tr, y_tr))
        p_te, r_te, y_te = _concat((p_te, r_te, y_te), short_te)  # only used by the refit
    x_tr = build_features("qa_triplet", enc, (p_tr, r_tr))
    x_te = build_features("qa_triplet", enc, (p_te, r_te))
    c_search: dict[str, float] = {}
    if c is None:

        def score(cc: float, f: np.ndarray, v: np.ndarray) -> float:
            return (fit_head(x_tr[f], y_tr[f], cc, seed).predict(x_tr[v]) == y_tr[v]).mean()

        c, c_search = select_c(np.arange(len(y_tr)), p_tr, seed, score)
    clf = fit_head(x_tr, y_tr, c, seed)
    prob = clf.predict_proba(x_te[: 2 * len(test)])[:, 1]
    metrics = binary_metrics(y_te[: 2 * len(test)], prob) | {"n_train": int(len(y_tr))}
    if len(short_te[2]):
        p_short = clf.predict_proba(build_features("qa_triplet", enc, short_te[:2]))[:, 1]
        metrics["heldout_accuracy_first_sentence"] = float(((p_short >= 0.5) == short_te[2]).mean())
        metrics["n_test_first_sentence"] = len(short_te[2])
    half = len(test)
    metrics["heldout_pair_accuracy"] = pairwise_accuracy(prob[:half], prob[half:], False) / 100
    if not use_hh_rlhf and f_hh.is_file():
        hh = read_hh_rlhf(f_hh, limit=hh_eval_rows)
        ph, rh, _ = rows(hh)
        p_hh = clf.predict_proba(build_features("qa_triplet", enc, (ph, rh)))[:, 1]
        acc = pairwise_accuracy(p_hh[: len(hh)], p_hh[len(hh) :], higher_is_better=False)
        metrics |= {"hh_rlhf_harmless_pair_accuracy": acc / 100, "hh_rlhf_n": len(hh)}
    if refit_all:
        clf = fit_head(np.vstack([x_tr, x_te]), np.concatenate([y_tr, y_te]), c, seed)
    meta = base_meta(
        "harm",
        enc,
        files,
        data_dir,
        metrics=metrics,
        C=c,
        C_inner_accuracy=c_search,
        seed=seed,
        split="official SPARD test file (no shared prompts)",
        max_rows=max_rows,
        use_hh_rlhf=use_hh_rlhf,
        first_sentence_augment=first_sentence_augment,
        refit_all=refit_all,
    )
    return TrainedJudge(meta, clf, enc)


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
