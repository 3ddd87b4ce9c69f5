"""The strict YAML loader: every problem reported at once, naming its YAML path."""

from __future__ import annotations

import pytest

from trinityx.cli import build_parser, describe
from trinityx.config import ConfigError, TrainExpertConfig, load_config

GOOD = """
dimension: helpful
output_dir: out/helpful
train:
  - path: starter:helpful
lora: {r: 4, alpha: 8}
optim: {epochs: 1, batch_size: 2}
"""


def test_good_config_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(GOOD)
    cfg = load_config(TrainExpertConfig, p, ["optim.epochs=3", "lora.target_modules=[q_proj]"])
    assert cfg.lora.r == 4 and cfg.optim.epochs == 3.0 and isinstance(cfg.optim.epochs, float)
    assert cfg.lora.target_modules == ["q_proj"]
    assert cfg.train[0].path == "starter:helpful"


def test_all_problems_reported_together(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        GOOD
        + "\nlearning_rate: 0.1\n"  # unknown top-level key
        + "method: ppo\n"  # bad literal
        + "backbone: {dtype: float64, devise: cpu}\n"  # bad literal + unknown nested key
    )
    with pytest.raises(ConfigError) as ei:
        load_config(TrainExpertConfig, p, ["optim.batch_size=zero", "lora.dropout=1.5"])
    msg = str(ei.value)
    assert str(p) in msg
    for needle in (
        "learning_rate: unknown key",
        "method: 'ppo'",
        "backbone.dtype",
        "backbone.devise",
        "optim.batch_size: expected an integer",
        "lora.dropout: must be in [0, 1)",
    ):
        assert needle in msg, msg
    assert len(ei.value.problems) >= 5


def test_bad_values_after_types(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(GOOD)
    with pytest.raises(ConfigError) as ei:
        load_config(
            TrainExpertConfig, p, ["lora.dropout=1.5", "lora.r=0", "optim.learning_rate=-1"]
        )
    msg = str(ei.value)
    assert "lora.dropout: must be in [0, 1)" in msg and "lora.r: must be > 0" in msg
    assert "optim.learning_rate: must be > 0" in msg


def test_missing_required_and_bad_override(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("dimension: honest\n")
    with pytest.raises(ConfigError) as ei:
        load_config(TrainExpertConfig, p)
    assert "output_dir: required key missing" in str(ei.value)
    assert "train: required key missing" in str(ei.value)
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(TrainExpertConfig, p, ["optim.epochs"])


def test_help_lists_every_key(capsys):
    lines = "\n".join(describe(TrainExpertConfig))
    for key in (
        "dimension",
        "lora.r",
        "lora.target_modules",
        "optim.max_length",
        "dpo.beta",
        "backbone.name",
        "seed",
    ):
        assert f"  {key} = " in lines
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-expert", "--help"])
    assert "optim.learning_rate" in capsys.readouterr().out


def test_exponent_floats_work_in_yaml_and_on_the_command_line(tmp_path):
    """PyYAML alone reads `3e-4` as a string; the loader reads it as YAML 1.2 does, a number."""
    p = tmp_path / "c.yaml"
    p.write_text(GOOD.replace("batch_size: 2}", "batch_size: 2, learning_rate: 3e-4}"))
    cfg = load_config(TrainExpertConfig, p)
    assert cfg.optim.learning_rate == pytest.approx(3e-4)
    assert isinstance(cfg.optim.learning_rate, float)
    cfg = load_config(TrainExpertConfig, p, ["optim.learning_rate=1E-5", "dpo.beta=+2e-1"])
    assert cfg.optim.learning_rate == pytest.approx(1e-5) and cfg.dpo.beta == pytest.approx(0.2)
    args = build_parser().parse_args(["train-expert", "-c", str(p), "optim.learning_rate=3e-4"])
    assert load_config(TrainExpertConfig, p, args.overrides).optim.learning_rate == 3e-4


def test_strictness_is_kept_for_numbers_and_strings(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(GOOD)
    with pytest.raises(ConfigError) as ei:
        load_config(
            TrainExpertConfig,
            p,
            ["optim.learning_rate=3e-x", "optim.batch_size=1e3", "optim.lerning_rate=3e-4"],
        )
    msg = str(ei.value)
    assert "optim.learning_rate: expected a number, got '3e-x'" in msg, msg
    assert "optim.batch_size: expected an integer, got 1000.0" in msg, msg
    assert "optim.lerning_rate: unknown key; allowed: epochs" in msg, msg
    assert msg.startswith(str(p))
    # quoted, a number-like value stays a string
    assert load_config(TrainExpertConfig, p, ["output_dir='1e3'"]).output_dir == "1e3"
