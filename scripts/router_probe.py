"""Why the router sends AlpacaEval to the harmless expert: representation or data? (issue 11)

Two diagnostics, as run on 2026-12-02 (outputs in docs/results/smollm2_hhh/router_probe/):

  probe     features of the frozen backbone (experts off) for the router's training prompts, the
            calibration-test prompts and the evaluation prompts, in 12 variants: pooling (mean
            over the whole chat-templated prompt, as the shipped router; mean over the user's
            message tokens only; last token) x hidden-state layer (8, 15, 22, 30). A standardised
            logistic regression per variant stands in for retraining the router (cheap: one
            forward per prompt) and reports calibration-test accuracy and where each benchmark's
            prompts go. If some representation separated intent, its AlpacaEval share would move
            to helpful while Do-Not-Answer stays with harmless.
  harmprob  the shipped router's calibrated p(harmless) per benchmark: the share of prompts above
            each threshold says whether any refusal threshold separates harmful requests from
            ordinary ones.

  PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/router_probe.py probe|harmprob OUT_DIR WORKDIR

WORKDIR is a `trinityx run configs/experiments/smollm2_hhh.yaml` run folder (its
eval_prompts.jsonl); data from --data-dir DATA. About 10 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from trinityx.data.formatting import prompt_string
from trinityx.data.routing_sets import load_routing
from trinityx.experiment.config import Layout, compose_config, load_experiment
from trinityx.experiment.routing import _prompts
from trinityx.model.composed import TrinityXModel

BENCH = [("alpaca_eval", 100), ("beavertails", 140), ("truthfulqa_gen", 100),
         ("refusal_harmful", 150), ("over_refusal", 80)]  # fmt: skip
LAYERS = [8, 15, 22, 30]
MODEL = "models/smollm2-hhh"


def _routing_sets(workdir: Path, data: Path):
    cfg = load_experiment("configs/experiments/smollm2_hhh.yaml", ["ship_to=null"])
    cc = compose_config(cfg, "sequence", Layout(workdir), data)
    excl = {json.loads(line) for line in open(workdir / "eval_prompts.jsonl")}
    train = [e for e in load_routing(cc, cc.router_data) if e.messages[-1]["content"] not in excl]
    return cc, train, load_routing(cc, cc.calibration_test_data)


@torch.no_grad()
def _features(m: TrinityXModel, prompts: list[str]) -> dict[str, np.ndarray]:
    """{"<pooling>@<layer>": (N, d)} for the three poolings at every layer of LAYERS."""
    res: dict[str, list] = {}
    for p in tqdm(prompts, leave=False):
        text = prompt_string(m.tokenizer, [{"role": "user", "content": p}])
        enc = m.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        ids = torch.tensor([enc["input_ids"][-256:]])
        c0 = text.rfind(p)  # the user's message: tokens whose characters lie inside it
        user = torch.tensor(
            [a >= c0 and b <= c0 + len(p) and b > a for a, b in enc["offset_mapping"][-256:]]
        )
        if not user.any():
            user[:] = True
        with m.experts_off():
            hs = m.model.base_model(input_ids=ids, output_hidden_states=True).hidden_states
        for layer in LAYERS:
            h = hs[layer][0].float()  # (T, d)
            res.setdefault(f"mean_all@{layer}", []).append(h.mean(0).numpy())
            res.setdefault(f"mean_user@{layer}", []).append(h[user].mean(0).numpy())
            res.setdefault(f"last@{layer}", []).append(h[-1].numpy())
    return {k: np.stack(v) for k, v in res.items()}


def probe(out: Path, workdir: Path, data: Path) -> None:
    _, train, test = _routing_sets(workdir, data)
    m = TrinityXModel.from_pretrained(MODEL)
    names = list(m.expert_names)
    hard = lambda xs: [e for e in xs if max(e.weights.values()) > 0.99]  # noqa: E731 (one-hot rows)
    label = lambda e: names.index(max(e.weights, key=e.weights.get))  # noqa: E731
    tr, te = hard(train), hard(test)
    Xtr, ytr = (
        _features(m, [e.messages[-1]["content"] for e in tr]),
        np.array([label(e) for e in tr]),
    )
    Xte, yte = (
        _features(m, [e.messages[-1]["content"] for e in te]),
        np.array([label(e) for e in te]),
    )
    bench = {b: _features(m, _prompts(b, data, n)) for b, n in BENCH}
    rows = {}
    for k in Xtr:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        clf.fit(Xtr[k], ytr)
        shares = {
            b: np.bincount(clf.predict(f[k]), minlength=3) / len(f[k]) for b, f in bench.items()
        }
        rows[k] = {"cal_test_acc": float((clf.predict(Xte[k]) == yte).mean()),
                   **{b: [round(100 * x) for x in s] for b, s in shares.items()}}  # fmt: skip
        print(k, json.dumps(rows[k]), flush=True)
    doc = {"experts": names, "n_train": len(tr), "n_test": len(te), "rows": rows}
    (out / "probe.json").write_text(json.dumps(doc, indent=1))


@torch.no_grad()
def harmprob(out: Path, workdir: Path, data: Path) -> None:
    m = TrinityXModel.from_pretrained(MODEL)
    h = list(m.expert_names).index("harmless")
    res = {}
    for b, n in BENCH:
        prompts = _prompts(b, data, n)
        p = torch.cat([m.router_probs(*m.encode(prompts[i : i + 16])).float()
                       for i in range(0, len(prompts), 16)])[:, h].numpy()  # fmt: skip
        res[b] = {f">{t}": round(float((p > t).mean()), 3) for t in (0.2, 0.5, 0.7, 0.8, 0.9, 0.95)}
        print(b, res[b], flush=True)
    (out / "harm_probs.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["probe", "harmprob"])
    ap.add_argument("out", type=Path)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    {"probe": probe, "harmprob": harmprob}[a.what](a.out, a.workdir, a.data_dir)
