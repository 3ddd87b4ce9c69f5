"""Command line: one subcommand per stage, each loading one config dataclass and calling one `run`.

`trinityx <command> --config file.yaml key=value ...`; `trinityx <command> --help` lists every
config key with its type, default and meaning (read from the dataclass field docstrings).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any

from trinityx import config as C
from trinityx import generate_cli, shipped_configs
from trinityx.config_help import describe
from trinityx.eval import config as EC
from trinityx.eval.explore.config import ExploreConfig
from trinityx.serve import command as serve_command


def _stage(cls: type, module: str) -> Callable[[argparse.Namespace], Any]:
    def handler(args: argparse.Namespace) -> Any:
        import importlib

        cfg = C.load_config(cls, shipped_configs.resolve_config_arg(args.config), args.overrides)
        out = importlib.import_module(f"trinityx.stages.{module}").run(cfg)
        print(out)
        return out

    return handler


def _stage_with_model(cls: type, module: str) -> Callable[[argparse.Namespace], Any]:
    """Like `_stage`, but a first bare argument is the model: `trinityx explore MODEL k=v`."""
    inner = _stage(cls, module)

    def handler(args: argparse.Namespace) -> Any:
        if args.overrides and "=" not in args.overrides[0]:
            args.overrides = [f"model={args.overrides[0]}", *args.overrides[1:]]
        return inner(args)

    return handler


def _presets(args: argparse.Namespace) -> Any:
    from trinityx.model.presets import load_presets

    found = load_presets(args.model)
    if not found:
        print(f"{args.model}: no presets (trinityx explore {args.model} saves 'just-right')")
    for name, p in found.items():
        w = (
            "router alone"
            if p.weights is None
            else ", ".join(f"{k} {v:g}" for k, v in p.weights.items())
        )
        dial = "" if p.refusal_tau is None else f", refusal dial tau {p.refusal_tau:g}"
        print(f"{name}: {w} ({p.mode}{dial}){' - ' + p.description if p.description else ''}")
    return found


def _presets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="composed artifact folder")


def _demo(args: argparse.Namespace) -> Any:
    from trinityx.demo import run_demo

    return run_demo(fast=args.fast, workdir=args.workdir, routing=args.routing)


def _run(args: argparse.Namespace) -> Any:
    from trinityx.experiment.config import load_experiment
    from trinityx.experiment.pipeline import run

    cfg = load_experiment(args.config, args.overrides)
    out = run(cfg, args.workdir, args.data_dir, restart=args.restart, only=args.only)
    print(out / "report.md")
    return out


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML (e.g. configs/experiments/smollm2_hhh.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    p.add_argument(
        "--data-dir",
        default="../shared/data",
        help="folder with the real data (default ../shared/data; see its README)",
    )
    p.add_argument(
        "--workdir",
        default="runs/experiment",
        help="run folder; keep long runs outside the checkout (default runs/experiment)",
    )
    p.add_argument(
        "--restart",
        action="append",
        default=[],
        metavar="STEP",
        help="redo a step (e.g. composed/sequence) or a group (e.g. eval); repeatable",
    )
    p.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="STEP",
        help="run only these steps or groups (e.g. experts); repeatable",
    )


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fast",
        action="store_true",
        help="tiny random backbone and few steps (a smoke test in seconds)",
    )
    p.add_argument(
        "--workdir",
        default="runs/demo",
        help="where artifacts, report.md and demo.log go (default runs/demo)",
    )
    p.add_argument(
        "--routing",
        choices=["sequence", "token"],
        default="sequence",
        help="router kind: sequence (default: faster and better calibrated on the "
        "starter data) or token (per layer and token, the paper's setting)",
    )


def _bench_args(p: argparse.ArgumentParser) -> None:
    from trinityx import bench

    bench.add_arguments(p)


def _bench(args: argparse.Namespace) -> Any:
    from trinityx import bench
    from trinityx.bench.report import format_table

    result = bench.run_bench(args)
    print(format_table(result))
    return result


def _configs_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    sub.add_parser("ls", help="list the shipped configs (names for --config or cp)")
    cp = sub.add_parser("cp", help="copy a shipped config file or folder out to edit")
    cp.add_argument(
        "name", help="a name from `trinityx configs ls`, e.g. tiny/helpful.yaml or tiny"
    )
    cp.add_argument("dest", help="file or folder to write")
    cp.add_argument("--force", action="store_true", help="overwrite an existing destination")


def _configs(args: argparse.Namespace) -> Any:
    if args.action == "ls":
        names = shipped_configs.list_configs()
        print("\n".join(names))
        return names
    out = shipped_configs.copy_config(args.name, args.dest, force=args.force)
    print(out)
    return out


# commands with their own plain options: name -> (add_arguments, handler, help)
PLAIN: dict[str, tuple[Callable, Callable, str]] = {
    "run": (
        _run_args,
        _run,
        "the whole experiment, resumable: experts, judges, composes, every"
        " system through one protocol, compare, report",
    ),
    "demo": (
        _demo_args,
        _demo,
        "train the three experts on the starter data with SmolLM2, compose"
        " and calibrate them, and show what they learned",
    ),
    "bench": (
        _bench_args,
        _bench,
        "speed and memory of TrinityX vs the base model, H3Fusion-style"
        " MoE, X-LoRA and an output ensemble (ratios from one interleaved run)",
    ),
    "configs": (
        _configs_args,
        _configs,
        "list the configs shipped with the package, or copy one"
        " out to edit (like torchtune's `tune ls` / `tune cp`)",
    ),
    "serve": (
        serve_command.add_arguments,
        serve_command.run,
        "serve a composed model (or a baseline) over an OpenAI-compatible"
        " HTTP API with dynamic batching of per-request HHH weights, and the playground at /",
    ),
    "presets": (_presets_args, _presets, "list the named HHH presets saved in a composed artifact"),
    "generate": (
        generate_cli.add_arguments,
        generate_cli.run,
        "answer prompts with a composed"
        " model: a preset, HHH weights or the refusal dial (trinityx generate MODEL TEXT)",
    ),
}

# command -> (config class, handler factory, help)
COMMANDS: dict[str, tuple[type, Callable, str]] = {
    "train-expert": (
        C.TrainExpertConfig,
        lambda: _stage(C.TrainExpertConfig, "train_expert"),
        "train one LoRA expert (SFT and/or DPO) for one HHH dimension",
    ),
    "compose": (
        C.ComposeConfig,
        lambda: _stage(C.ComposeConfig, "compose"),
        "inject the experts into the backbone, train and calibrate the router (MoCaE)",
    ),
    "eval": (
        EC.EvalConfig,
        lambda: _stage(EC.EvalConfig, "evaluate"),
        "run the HHH benchmarks on a model or baseline spec",
    ),
    "compare": (
        EC.CompareConfig,
        lambda: _stage(EC.CompareConfig, "compare"),
        "paper-layout table + chart over several eval results",
    ),
    "train-judge": (
        EC.TrainJudgeConfig,
        lambda: _stage(EC.TrainJudgeConfig, "train_judge"),
        "train a local judge (truth, info, harm, pairwise, helpfulness) on CPU",
    ),
    "calibrate": (
        C.CalibrateConfig,
        lambda: _stage(C.CalibrateConfig, "calibrate"),
        "refit a composed model's router calibration on new held-out prompts",
    ),
    "explore": (
        ExploreConfig,
        lambda: _stage_with_model(ExploreConfig, "explore"),
        "map the HHH trade-off (weights grid, router, refusal dial) of a composed model "
        "and save the best point as a preset: trinityx explore MODEL [key=value ...]",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trinityx",
        description="TrinityX: helpful, harmless and honest LoRA experts composed inside the "
        "transformer by a calibrated router (MoCaE).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `trinityx <command> --help` for every config key of a command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (cls, factory, help_) in COMMANDS.items():
        keys = "\n".join(describe(cls))
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{help_}\n\n{inspect.getdoc(cls)}\n\nConfig keys (YAML or key=value):\n"
            f"{keys}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--config",
            "-c",
            help="YAML config file, or the name of a shipped one "
            "(`trinityx configs ls`, e.g. tiny/helpful.yaml)",
        )
        p.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="dotted overrides, e.g. optim.epochs=3 lora.r=16",
        )
        p.set_defaults(handler=factory())
    for name, (add_args, handler, help_) in PLAIN.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.handler(args)
    except (C.ConfigError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as e:
        print(f"trinityx {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
