"""Data-parallel expert training: `accelerate launch --cpu --num_processes 2` (DDP over gloo) on the
tiny model ends with the adapter one process trains with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_train_expert import _cfg

from trinityx.config import dump_yaml
from trinityx.model.router_training import train_router
from trinityx.stages import train_expert

ADAPTER = "adapter/adapter_model.safetensors"
TOL = 1e-5  # float32 on CPU: the two runs differ only in summation order (gradient all-reduce)


def _launch_two_processes(cfg_path, log_path) -> subprocess.CompletedProcess:
    """The README's command. `--cpu --num_processes 2` would start ONE process unless mpirun is
    set up (accelerate 1.16's simple launcher); `--multi_gpu` goes through torchrun and, with no
    GPU visible, every rank trains on CPU with DDP over gloo."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_VERBOSITY": "info",
        "CUDA_VISIBLE_DEVICES": "",
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        "-m",
        "trinityx.cli",
        "train-expert",
        "-c",
        str(cfg_path),
    ]
    with open(log_path, "w") as log:
        return subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900)


def test_two_process_ddp_equals_one_process(tmp_path, tiny_backbone_cfg):
    steps = {"optim.max_steps": 6, "optim.save_steps": 100, "max_new_tokens": 2}
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
    one = _cfg(tmp_path / "one", tiny_backbone_cfg, **{**steps, "optim.batch_size": 4})
    two = _cfg(tmp_path / "two", tiny_backbone_cfg, **{**steps, "optim.batch_size": 2})
    cfg_path = tmp_path / "two" / "train.yaml"
    cfg_path.write_text(dump_yaml(two))
    res = _launch_two_processes(cfg_path, tmp_path / "launch.log")
    log = (tmp_path / "launch.log").read_text()
    assert res.returncode == 0, log[-4000:]
    assert "Instantaneous batch size per device = 2" in log, log[-4000:]
    assert "(w. parallel, distributed & accumulation) = 4" in log, log[-4000:]  # 2 processes
    train_expert.run(one)
    a = load_file(str(tmp_path / "one" / "expert" / ADAPTER))
    b = load_file(str(tmp_path / "two" / "expert" / ADAPTER))
    assert a.keys() == b.keys() and a
    init = {k: v for k, v in a.items() if "lora_B" in k}
    assert any(v.abs().max() > 1e-3 for v in init.values())  # the adapter really trained
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= TOL, f"max |one - two| = {diff:.3g}"


def test_router_training_refuses_several_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="single process"):
        train_router(None, [], None, torch.zeros(3))
