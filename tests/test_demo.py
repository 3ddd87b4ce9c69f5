"""The main job, end to end on the tiny backbone: `trinityx demo --fast` through the CLI."""

from __future__ import annotations

import json

from trinityx.cli import main


def test_demo_fast_runs_the_whole_pipeline(tmp_path, cache_dir, capsys):
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("[helpful]", "[harmless]", "[honest]", "held-out loss", "router accuracy on held-out test prompts",
                   "ECE", "TrinityX ["):
        assert needle in out, needle
    composed = tmp_path / "tiny" / "composed" / "token"
    report = json.loads((composed / "report.json").read_text())
    assert report["experts"] == ["helpful", "harmless", "honest"]
    # A second run reuses the finished artifacts instead of retraining.
    assert main(["demo", "--fast", "--workdir", str(tmp_path)]) == 0
    assert "reusing finished expert" in capsys.readouterr().out
