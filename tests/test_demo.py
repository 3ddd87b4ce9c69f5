"""The main job, end to end on the tiny backbone: `trinityx demo --fast` through the CLI.

Same code path as the SmolLM2 demo (configs/tiny instead of configs/smollm2/demo)."""

from __future__ import annotations

import json

import pytest

from trinityx.cli import main
from trinityx.config import DataSource, TrainExpertConfig
from trinityx.data.loading import load_sources


def test_demo_fast_runs_the_whole_pipeline(tmp_path, cache_dir, capsys, monkeypatch):
    from trinityx.demo import pipeline

    # the repository ships models/smollm2-hhh; this run shows the case without one
    monkeypatch.setattr(pipeline, "SHIPPED", tmp_path / "no-shipped-model")
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for needle in (
        "[helpful]",
        "[harmless]",
        "[honest]",
        "held-out loss",
        "router held-out accuracy",
        "ECE",
        "TrinityX [",
        "benign but edgy",
        "harmless weight 0 ->",
        "harmless weight 2 ->",
        "not present: skipped",
        "TrinityX  ",
        "done in",
    ):
        assert needle in out, needle
    # Library warnings and the trainer's per-step dicts went to the log, not the terminal.
    root = tmp_path / "tiny"
    log = (root / "demo.log").read_text()
    assert "{'loss'" in log or "'loss':" in log
    for noise in ("FutureWarning", "{'loss'", "train_runtime"):
        assert noise not in out and noise not in captured.err, noise
    composed = root / "composed" / "sequence"
    report = json.loads((composed / "report.json").read_text())
    assert report["experts"] == ["helpful", "harmless", "honest"]
    assert report["routing"] == "sequence"
    md = (root / "report.md").read_text()
    for needle in ("reliability.png", "heldout.png", "## Held-out slice", "harmless weight"):
        assert needle in md, needle
    assert (root / "heldout.png").is_file()
    show = json.loads((root / "showcase.json").read_text())
    assert set(show["table"]["rows"]) == {
        "backbone",
        "helpful expert",
        "harmless expert",
        "honest expert",
        "TrinityX",
    }
    assert [s["weights"]["harmless"] for s in show["sweep"]] == [0.0, 1.0, 2.0]
    # harmless weight 0 removes the harmless expert from the gates; 2 raises its share.
    g = [s["gates"]["harmless"] for s in show["sweep"]]
    assert g[0] == 0.0 and g[1] < g[2]
    timings = json.loads((root / "timings.json").read_text())
    assert {"helpful", "harmless", "honest", "compose", "showcase", "total"} <= set(timings)

    # A second run reuses every finished stage instead of retraining or regenerating.
    mtime = (composed / "manifest.json").stat().st_mtime
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    out2 = capsys.readouterr().out
    assert out2.count("reusing finished expert") == 3
    assert "reusing finished" in out2 and "reusing probes" in out2
    assert (composed / "manifest.json").stat().st_mtime == mtime
    timings = json.loads((root / "timings.json").read_text())
    assert all(
        v.get("reused") for k, v in timings.items() if k in ("helpful", "compose", "showcase")
    )
    assert timings["helpful"]["built_seconds"] is not None  # the first run's time is kept


def test_demo_shows_a_shipped_model_when_present(tmp_path, cache_dir, capsys, monkeypatch):
    """models/smollm2-hhh answers the same probes when present; a broken one is reported."""
    from trinityx.demo import pipeline

    monkeypatch.setattr(pipeline, "SHIPPED", tmp_path / "no-shipped-model")
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    composed = tmp_path / "tiny" / "composed" / "sequence"
    monkeypatch.setattr(pipeline, "SHIPPED", composed)  # any composed artifact will do
    capsys.readouterr()
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "=== The same probes by the shipped model" in out
    show = json.loads((tmp_path / "tiny" / "showcase.json").read_text())
    assert len(show["shipped"]["answers"]) == len(show["probes"])

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    monkeypatch.setattr(pipeline, "SHIPPED", broken)
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    assert "could not be loaded" in capsys.readouterr().out


@pytest.mark.parametrize("dim", ["helpful", "harmless", "honest"])
def test_probes_are_not_in_the_starter_data(dim):
    """The demo's probes show generalisation: none is a training or held-out starter prompt."""
    from trinityx.demo.showcase import PROBES, SWEEP_PROMPT

    src = DataSource(path=f"starter:{dim}")
    cfg = TrainExpertConfig(dimension=dim, output_dir="unused", train=[src])
    seen = {r.messages[-1]["content"].lower() for r in load_sources(cfg, [src], dimension=dim)}
    probes = [p for ps in PROBES.values() for p in ps] + [SWEEP_PROMPT]
    assert not [p for p in probes if p.lower() in seen]


def test_backbone_cache_loads_once_and_hands_out_independent_copies(cache_dir, monkeypatch):
    """Stages inject LoRA / MoCaE modules in place: each must get its own copy of the one load."""
    import torch

    from trinityx.config import BackboneConfig
    from trinityx.demo import pipeline

    calls = []
    real = pipeline.load_backbone
    monkeypatch.setattr(pipeline, "load_backbone", lambda cfg: calls.append(cfg) or real(cfg))
    cache = pipeline.BackboneCache()
    cfg = BackboneConfig(name="tiny-random-llama")
    a, b = cache(cfg, for_training=True), cache(cfg)
    assert len(calls) == 1
    assert a.weights_hash == b.weights_hash and a.model is not b.model
    w = a.model.get_input_embeddings().weight
    before = b.model.get_input_embeddings().weight.clone()
    with torch.no_grad():
        w.add_(1.0)
    assert torch.equal(b.model.get_input_embeddings().weight, before)
    assert not any(p.requires_grad for p in b.model.parameters())
