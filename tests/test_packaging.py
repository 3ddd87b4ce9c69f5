"""Installable as a package, not only as a clone: the configs ship inside the wheel.

The fast tests use the shipped configs through `trinityx.shipped_configs` and the `configs` command; the
slow one builds the wheel, installs it (non-editable) into a fresh folder and runs `trinityx
--help`, `trinityx configs ls` and the tiny demo from an empty working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trinityx import shipped_configs
from trinityx.cli import main
from trinityx.config import TrainExpertConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def test_every_repository_config_is_shipped():
    repo = sorted(
        p.relative_to(REPO / "configs").as_posix() for p in REPO.glob("configs/**/*.yaml")
    )
    assert shipped_configs.list_configs() == repo
    assert {"tiny/helpful.yaml", "tiny/compose.yaml", "smollm2/demo/compose.yaml"} <= set(repo)


def test_configs_ls_and_cp(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["configs", "ls"]) == 0
    assert "tiny/helpful.yaml" in capsys.readouterr().out.split()
    assert main(["configs", "cp", "tiny/helpful", "mine.yaml"]) == 0
    cfg = load_config(TrainExpertConfig, "mine.yaml", ["optim.learning_rate=3e-4"])
    assert cfg.dimension == "helpful" and cfg.optim.learning_rate == 3e-4
    assert main(["configs", "cp", "tiny/helpful.yaml", "mine.yaml"]) == 2  # no silent overwrite
    assert "mine.yaml exists" in capsys.readouterr().err
    assert main(["configs", "cp", "tiny", "all"]) == 0
    assert sorted(p.name for p in Path("all").iterdir()) == sorted(
        Path(n).name for n in shipped_configs.list_configs() if n.startswith("tiny/")
    )
    assert main(["configs", "cp", "tiny/helpfull", "x.yaml"]) == 2
    assert "did you mean tiny/helpful.yaml" in capsys.readouterr().err


def test_config_flag_falls_back_to_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        shipped_configs.resolve_config_arg("tiny/helpful.yaml")
        == shipped_configs.CONFIG_ROOT / "tiny/helpful.yaml"
    )
    assert (
        shipped_configs.resolve_config_arg("configs/tiny/honest")
        == shipped_configs.CONFIG_ROOT / "tiny/honest.yaml"
    )
    Path("tiny").mkdir()
    Path("tiny/helpful.yaml").write_text("dimension: honest\n")  # a local file wins
    assert shipped_configs.resolve_config_arg("tiny/helpful.yaml") == "tiny/helpful.yaml"
    with pytest.raises(FileNotFoundError, match="config file not found: nothing.yaml"):
        load_config(TrainExpertConfig, shipped_configs.resolve_config_arg("nothing.yaml"))


@pytest.mark.slow
def test_wheel_installs_and_runs_the_tiny_demo_from_an_empty_folder(tmp_path):
    """Build the wheel from a copy of the tree (the checkout is left untouched), install it
    without the source tree on the path, and run the CLI where no configs/ folder exists."""
    src = tmp_path / "src"
    keep = {"pyproject.toml", "README.md", "LICENSE", "src", "configs"}
    for item in REPO.iterdir():
        if item.name in keep:
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            kw = {"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")}
            copy(item, src / item.name, **(kw if item.is_dir() else {}))
    pip = [sys.executable, "-m", "pip", "-q"]
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)], **run
    )
    wheel = next(tmp_path.glob("trinityx-*.whl"))
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], **run)

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}

    def trinityx(*args: str) -> str:
        cmd = [sys.executable, "-m", "trinityx.cli", *args]
        out = subprocess.run(cmd, cwd=empty, env=env, **{**run, "check": False})
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    where = subprocess.run(
        [sys.executable, "-c", "import trinityx; print(trinityx.__file__)"],
        cwd=empty,
        env=env,
        **run,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout  # the wheel, not the checkout
    assert "demo" in trinityx("--help") and "--fast" in trinityx("demo", "--help")
    assert "smollm2/demo/helpful.yaml" in trinityx("configs", "ls").split()
    trinityx("demo", "--fast", "--workdir", "w")
    assert "TrinityX" in (empty / "w" / "tiny" / "report.md").read_text()
