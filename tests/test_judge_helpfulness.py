"""The helpfulness judge: tree export, by-generator split, artifact round trip, harness default.

Synthetic annotations (a hashing encoder, no MiniLM): GPT-4 prefers the answer that names the
task's keyword, whatever its length, so a judge that only measured length would fail them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from sklearn.ensemble import HistGradientBoostingClassifier

from trinityx.eval.judges.base import JudgeConfigError
from trinityx.eval.judges.local import train as train_module
from trinityx.eval.judges.local.backend import LocalJudge
from trinityx.eval.judges.local.encoders import HashingEncoder
from trinityx.eval.judges.local.helpfulness import HelpfulnessJudge
from trinityx.eval.judges.local.train import train_judge
from trinityx.eval.judges.local.train_helpfulness import generator_split
from trinityx.eval.judges.local.trained import TrainedJudge
from trinityx.eval.judges.local.trees import TreeEnsemble

GENERATORS = [f"model-{k}" for k in range(6)]


def _answer(rng: np.random.Generator, i: int, good: bool) -> str:
    filler = " ".join(["words"] * int(rng.integers(2, 30)))
    return f"topic{i} exact solution. {filler}" if good else f"unrelated chatter. {filler}"


def _write_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    ann = root / "alpaca_eval"
    (ann / "gpt4_annotations_vs_davinci003").mkdir(parents=True)
    rows = []
    for k, g in enumerate(GENERATORS):
        for i in range(40):
            wins = rng.random() < 0.3 + 0.1 * k  # generators differ in quality
            rows.append(
                {
                    "instruction": f"explain topic{i}",
                    "output_1": _answer(rng, i, not wins),
                    "generator_1": "text_davinci_003",
                    "output_2": _answer(rng, i, wins),
                    "generator_2": g,
                    "preference": 2 if wins else 1,
                }
            )
    rows.append({**rows[0], "preference": 1.5})  # a tie: kept for win rates, not for agreement
    with gzip.open(ann / "gpt4_annotations_more.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    extra = [{**r, "preference": r["preference"]} for r in rows[:40]]
    (ann / "gpt4_annotations_vs_davinci003" / "extra-model.json").write_text(json.dumps(extra))
    return root


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("helpfulness")
    data = _write_data(root / "data")
    return train_judge(
        "helpfulness",
        data,
        root / "judges" / "helpfulness",
        encoder=HashingEncoder(64),
        n_test_generators=2,
        n_proj=4,
        gbm={"max_iter": 40, "min_samples_leaf": 5},
    )


def test_tree_ensemble_round_trip_matches_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 4))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned branch
    y = ((np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2) > 0.7).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    save_file(TreeEnsemble.from_sklearn(clf).arrays("t_"), str(tmp_path / "t.safetensors"))
    arrays = load_file(str(tmp_path / "t.safetensors"))
    back = TreeEnsemble({k[2:]: v for k, v in arrays.items()})
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x)[:, 1], atol=1e-12)
    with pytest.raises(ValueError, match=r"expects \(N, 4\)"):
        back.predict_proba(x[:, :3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generator_split_never_leaks_a_generator(seed: int) -> None:
    gens = [g for g in GENERATORS for _ in range(7)] + ["solo"] * 3
    tr, te = generator_split(gens, n_test=2, seed=seed)
    train_g, test_g = {gens[i] for i in tr}, {gens[i] for i in te}
    assert len(test_g) == 2 and not train_g & test_g
    assert sorted(tr.tolist() + te.tolist()) == list(range(len(gens)))  # every row on one side
    with pytest.raises(ValueError, match="n_test_generators"):
        generator_split(gens, n_test=len(set(gens)), seed=seed)


def test_trainer_fits_only_training_generators(artifact: Path) -> None:
    meta = json.loads((artifact / "judge.json").read_text())
    fitted, held = set(meta["fit_generators"]), set(meta["metrics"]["heldout_generators"])
    assert len(held) == 2 and not fitted & held
    assert fitted | held == {*GENERATORS, "extra-model"}
    assert set(meta["report"]["heldout_generators"]["per_generator"]) == held


def test_helpfulness_artifact_round_trip(artifact: Path) -> None:
    names = sorted(p.name for p in artifact.iterdir())
    assert names == [
        "head.safetensors",
        "judge.json",
        "reliability.png",
        "report.json",
        "report.md",
    ]
    meta = json.loads((artifact / "judge.json").read_text())
    assert meta["kind"] == "helpfulness" and meta["feature_recipe"] == "pair_v2"
    assert meta["preference_mode"] in ("soft", "hard")
    assert (artifact / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((artifact / "report.json").read_text())
    assert "longer_wins_agreement" in report["report"]["heldout_generators"]
    assert "| held-out model |" in (artifact / "report.md").read_text()
    judge = TrainedJudge.load(artifact, encoder=HashingEncoder(64))
    assert isinstance(judge, HelpfulnessJudge)
    ins = ["explain topic3", "explain topic7"]
    good, bad = "topic3 exact solution. words", "unrelated chatter. words words words words words"
    a, b = [good, "unrelated chatter."], [bad, "topic7 exact solution. words words"]
    p = judge.predict_proba(ins, a, b)
    np.testing.assert_allclose(p, TrainedJudge.load(artifact).predict_proba(ins, a, b))
    np.testing.assert_allclose(judge.predict_proba(ins, b, a), 1 - p)  # position-debiased
    assert p[0] < 0.5 < p[1]  # the keyword answer wins although it is the shorter one
    m = meta["metrics"]
    assert m["heldout_generator_agreement"] > m["longer_wins_agreement"]


def test_local_judge_prefers_with_helpfulness_by_default(artifact: Path) -> None:
    folder = artifact.parent
    judge = LocalJudge(folder)  # prefer_head="helpfulness", mode from judge.json
    prefs = judge.prefer(
        ["explain topic3"], ["unrelated chatter. words"], ["topic3 exact solution."]
    )
    assert prefs[0] > 1.5
    hard = LocalJudge(folder, hard_preferences=True).prefer(
        ["explain topic3"], ["unrelated chatter. words"], ["topic3 exact solution."]
    )
    assert hard == [2.0]
    with pytest.raises(NotImplementedError, match="pairwise"):
        LocalJudge(folder, prefer_head="pairwise").prefer(["i"], ["a"], ["b"])
    with pytest.raises(JudgeConfigError, match="prefer_head"):
        LocalJudge(folder, prefer_head="longest")


def test_train_judge_stage_helpfulness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trinityx.stages import train_judge as stage

    data = _write_data(tmp_path / "data")
    monkeypatch.setattr(train_module, "SentenceEncoder", lambda **_: HashingEncoder(32))  # no wheel
    cfg = stage.TrainJudgeConfig("helpfulness", str(data), str(tmp_path / "h"), n_test_generators=3)
    out = stage.run(cfg)
    meta = json.loads((out / "judge.json").read_text())
    assert len(meta["metrics"]["heldout_generators"]) == 3
    assert "n_test_generators=3" in json.loads((out / "report.json").read_text())["command"]


def test_train_generators_cannot_include_a_heldout_model(tmp_path: Path) -> None:
    from trinityx.eval.judges.local.train_helpfulness import train_helpfulness

    data = _write_data(tmp_path / "data")
    with pytest.raises(ValueError, match="held out or unknown"):
        train_helpfulness(
            data, HashingEncoder(16), None, 0, n_test_generators=2, train_generators=GENERATORS
        )
