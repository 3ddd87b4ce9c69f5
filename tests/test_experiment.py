"""`trinityx run`: the experiment pipeline end to end on the tiny model (every artifact written,
a second run reuses them all, a changed config is refused until restarted), the report's paired
test and selection by hand, and no evaluation prompt in any training, router or calibration set
of the real experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_eval import write_data_dir

from trinityx.experiment import pipeline as experiment
from trinityx.experiment.config import load_experiment
from trinityx.experiment.report import paired_bootstrap
from trinityx.model.artifacts import ArtifactError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tiny_run(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setenv("TRINITYX_CACHE", str(cache_dir))
    data = write_data_dir(tmp_path / "data")
    return load_experiment(ROOT / "configs/tiny/experiment.yaml"), tmp_path / "work", data


def test_tiny_experiment_end_to_end_resumes_and_refuses_stale_artifacts(tiny_run, caplog):
    cfg, work, data = tiny_run
    report = experiment.run(cfg, work, data)
    for step in (
        "experts/helpful",
        "experts/harmless",
        "experts/honest",
        "composed/sequence",
        "composed/sequence-top1",
        *(f"eval/{s}" for s in cfg.systems),
    ):
        stamp = json.loads((work / "stamps" / (step.replace("/", "__") + ".json")).read_text())
        assert stamp["seconds"] > 0, step
    res = json.loads((report / "results.json").read_text())
    assert res["chosen"] in ("sequence", "sequence-top1")
    assert set(res["systems"]) == set(cfg.systems)
    md = (report / "report.md").read_text()
    assert "Paired bootstrap" in md and "Wall time per step" in md
    assert res["paired_vs_trinityx"]["base"]["refuse harmful"]["n"] == 4
    assert (work / "compare" / "compare.md").is_file()
    shares = res["routing"]["refusal_harmful"]["top1_share"]  # where the router sent them
    assert sum(shares.values()) == pytest.approx(100.0) and (report / "routing.png").is_file()
    r = json.loads((work / "eval/trinityx-sequence-top1/results.json").read_text())
    assert {"refusal_harmful", "over_refusal", "spard_pref"} <= set(r["benchmarks"])

    # the chosen model ships with bf16 experts and a card, and loads
    from safetensors.torch import load_file

    from trinityx.model.composed import TrinityXModel

    cfg.ship_to = str(work / "shipped")
    experiment.run(cfg, work, data)
    shipped = work / "shipped"
    assert "## Experts" in (shipped / "README.md").read_text()
    w = load_file(str(next((shipped / "experts" / "harmless").rglob("*.safetensors"))))
    assert {t.dtype for t in w.values()} == {torch.bfloat16}
    m = TrinityXModel.from_pretrained(shipped)
    assert m.routing == "sequence" and set(m.experts) == {"helpful", "harmless", "honest"}
    assert (shipped / "experts" / "honest" / "metrics.json").is_file()  # training record travels

    # a new workdir reuses the shipped experts and model (experts.<dim>.path, composes.<n>.path)
    import copy

    again = copy.deepcopy(cfg)
    again.ship_to = None
    for dim, ref in again.experts.items():
        ref.path = str(shipped / "experts" / dim)
    again.composes["sequence"].path = str(shipped)
    work2 = work.parent / "work2"
    experiment.run(again, work2, data, only=["experts", "composed/sequence"])
    stamp = json.loads((work2 / "stamps" / "experts__harmless.json").read_text())
    assert stamp["config_sha256"] and (work2 / "experts/harmless/metrics.json").is_file()
    assert TrinityXModel.from_pretrained(work2 / "composed/sequence").routing == "sequence"
    again.experts["honest"].path = str(work / "experts" / "honest")  # another source: refused
    with pytest.raises(ArtifactError, match="--restart experts/honest"):
        experiment.run(again, work2, data, only=["experts"])

    # a second run reuses every finished step
    before = {p: p.stat().st_mtime for p in (work / "stamps").glob("*.json")}
    experiment.run(cfg, work, data)
    assert before == {p: p.stat().st_mtime for p in (work / "stamps").glob("*.json")}

    # a changed stage config is refused, naming the step to restart; --restart redoes only it
    cfg.composes["sequence-top1"].overrides.append("seed=1")
    with pytest.raises(ArtifactError, match="--restart composed/sequence-top1"):
        experiment.run(cfg, work, data)
    experiment.run(cfg, work, data, restart=["composed/sequence-top1"], only=["composed"])
    after = {p: p.stat().st_mtime for p in (work / "stamps").glob("*.json")}
    changed = {p.stem for p in after if after[p] != before.get(p)}
    assert changed == {"composed__sequence-top1"}


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text(
        "experts: {helpful: {config: a.yaml}}\ncomposes: {}\neval: {config: e.yaml}\n"
        "systems: {h: 'expert:honest', t: 'trinityx:nope'}\njudges: {wisdom: {}}\n"
        "system_overrides: {gone: [seed=1]}\n"
    )
    with pytest.raises(Exception) as ei:
        load_experiment(p)
    msg = str(ei.value)
    assert "systems.h" in msg and "systems.t" in msg and "judges.wisdom" in msg
    assert "system_overrides.gone" in msg


def test_system_overrides_reach_that_system_alone_with_data_paths_rebased(tmp_path):
    from trinityx.experiment.config import Layout, eval_config

    cfg = load_experiment(
        ROOT / "configs/tiny/experiment.yaml",
        [
            "system_overrides={helpful: ['baseline_options={router_data: [{path: ../shared/data/x.json}]}', seed=7]}"
        ],
    )
    lay, data = Layout(tmp_path / "w"), write_data_dir(tmp_path / "data")
    st = eval_config(cfg, "helpful", lay, data)
    assert st.seed == 7 and st.baseline_options["router_data"][0]["path"] == f"{data}/x.json"
    other = eval_config(cfg, "base", lay, data)
    assert other.seed == 0 and other.baseline_options == {}
    steps = {s.name: s for s in experiment.plan(cfg, lay.root, data)}
    assert (
        "exclude_prompts: " + str(lay.root / "eval_prompts.jsonl") in steps["eval/base"].config_text
    )


def test_paired_bootstrap_by_hand():
    a, b = np.array([100.0, 100, 0, 100]), np.array([0.0, 100, 0, 0])
    r = paired_bootstrap(a, b, n_boot=500)
    assert r["diff"] == pytest.approx(50.0) and r["n"] == 4
    assert 0 <= r["ci"][0] <= 50 <= r["ci"][1] <= 100
    same = paired_bootstrap(a, a, n_boot=100)
    assert same["diff"] == 0 and same["p"] == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(a, b[:3])


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_no_evaluation_prompt_in_any_training_router_or_calibration_set(shared_data, tmp_path):
    """Every prompt the real experiment trains experts, routers or calibrators on is checked
    against every evaluation prompt of the protocol (exact match after case/space folding)."""
    from trinityx.config import DataSource
    from trinityx.data.loading import load_sources
    from trinityx.data.records import prompt_text
    from trinityx.data.routing_sets import load_routing
    from trinityx.eval.tasks import alpaca_eval, beavertails, hh_rlhf, refusal, spard, truthfulqa
    from trinityx.experiment.config import Layout, compose_config, eval_config, expert_config

    cfg = load_experiment(ROOT / "configs/experiments/smollm2_hhh.yaml")
    lay = Layout("unused")
    used: dict[str, set[str]] = {}
    exclude = experiment._write_eval_prompts(shared_data, tmp_path / "eval_prompts.jsonl")
    for dim in cfg.experts:
        st = expert_config(cfg, dim, lay, shared_data)
        st.exclude_prompts = exclude  # as the pipeline sets it
        for src in st.train + st.heldout:
            used[f"experts.{dim}:{src.path}"] = {
                _norm(prompt_text(r.messages)) for r in load_sources(st, [src])
            }
    for name in cfg.composes:
        st = compose_config(cfg, name, lay, shared_data)
        st.exclude_prompts = exclude
        for field in ("router_data", "calibration_data", "calibration_test_data"):
            for src in getattr(st, field):
                used[f"composes.{name}.{field}:{src.path}"] = {
                    _norm(prompt_text(r.messages)) for r in load_routing(st, [src])
                }
    for system in cfg.system_overrides:  # e.g. H3Fusion's gate prompts
        st = eval_config(cfg, system, lay, shared_data)
        st.exclude_prompts = exclude
        opts = st.baseline_options
        for s in opts.get("router_data") or []:
            ds = DataSource(path=s["path"], split=s.get("split"), limit=opts.get("limit"))
            rows = load_sources(st, [ds], kind="routing", dimension=s["label"])
            used[f"systems.{system}.router_data:{s['path']}"] = {
                _norm(prompt_text(r.messages)) for r in rows
            }
    evals = {
        "alpaca_eval": {_norm(i.instruction) for i in alpaca_eval.read_alpaca_eval(shared_data)},
        "beavertails": {_norm(i.prompt) for i in beavertails.read_beavertails_eval(shared_data)},
        "truthfulqa test": {
            _norm(i.question) for i in truthfulqa.read_truthfulqa_gen(shared_data, "test")
        },
        "hh-rlhf test": {  # as the hh_harmless benchmark reads it: minus SPARD train prompts
            _norm(m["content"])
            for p in hh_rlhf.read_hh_harmless_clean(shared_data)
            for m in p.messages
            if m["role"] == "user"
        },
        "do-not-answer": {_norm(i.prompt) for i in refusal.read_do_not_answer(shared_data)},
        "benign-edgy": {_norm(i.prompt) for i in refusal.read_benign_edgy(shared_data)},
        "spard test": {_norm(prompt_text(p.messages)) for p in spard.read_spard_test(shared_data)},
    }
    assert sum(map(len, used.values())) > 3000  # the sets were really read
    leaks = {
        (u, e): sorted(up & ep)[:3] for u, up in used.items() for e, ep in evals.items() if up & ep
    }
    assert not leaks, "\n".join(f"{u} ∩ {e}: {v}" for (u, e), v in leaks.items())
