"""The harm judge (a BeaverTails safety classifier stand-in): SPARD safe/unsafe pairs.

Scored on SPARD's official test file (no prompt shared with training) and, as a check on other
data, on HH-RLHF harmless pairs. ``judges.local.train.train_judge`` picks the trainer by kind.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trinityx.data.records import prompt_text
from trinityx.eval.judges.local.data import read_spard_pairs
from trinityx.eval.judges.local.encoders import Encoder
from trinityx.eval.judges.local.features import build_features
from trinityx.eval.judges.local.fitting import binary_metrics, fit_head, select_c, subsample
from trinityx.eval.judges.local.folder import base_meta
from trinityx.eval.judges.local.trained import TrainedJudge
from trinityx.eval.metrics import pairwise_accuracy
from trinityx.eval.tasks.hh_rlhf import HH_RLHF_HARMLESS, read_hh_rlhf

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
