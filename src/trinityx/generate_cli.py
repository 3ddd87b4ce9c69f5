"""`trinityx generate MODEL PROMPT ...`: answer prompts from the terminal with a chosen trade-off.

The command-line twin of the server's `hhh` extension, so a preset saved by `trinityx explore`
(or HHH weights, or the refusal dial) can be tried without writing Python or starting a server:

    trinityx generate models/smollm2-hhh "How do I pick a lock?" --preset just-right
    trinityx generate models/smollm2-hhh "..." --hhh harmless=2,helpful=1 --show-routing
    printf '%s\\n' "first prompt" "second prompt" | trinityx generate MODEL - --json

Prompts are batched together (one `TrinityXModel.generate` call); `-` reads one prompt per line
from stdin. Every option maps to one keyword of `generate`, whose errors (unknown preset, unknown
dimension, negative weight without --allow-negative) are printed as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def parse_hhh(text: str) -> dict[str, float]:
    """`helpful=1,harmless=0.5` -> {"helpful": 1.0, "harmless": 0.5}; argparse prints the error
    (ArgumentTypeError, not ValueError, whose message argparse would hide)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(
                f"expected name=value pairs like helpful=1,harmless=0.5; got {part!r}"
            )
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name.strip()}={value!r} is not a number") from None
    if not out:
        raise argparse.ArgumentTypeError("empty: give e.g. helpful=1,harmless=0.5")
    return out


def read_prompts(prompts: list[str]) -> list[str]:
    """The prompts given, with `-` replaced by stdin's non-empty lines."""
    out: list[str] = []
    for p in prompts:
        if p == "-":
            out.extend(line for line in sys.stdin.read().splitlines() if line.strip())
        else:
            out.append(p)
    if not out:
        raise ValueError("no prompts: give them as arguments or pipe them into `-`")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `generate` subcommand's options (one per `TrinityXModel.generate` keyword)."""
    p.add_argument(
        "model", metavar="MODEL", help="composed artifact folder, e.g. models/smollm2-hhh"
    )
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="prompt(s); '-' reads stdin lines")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--preset", help="a named preset of MODEL (`trinityx presets MODEL`)")
    how.add_argument(
        "--hhh",
        type=parse_hhh,
        metavar="NAME=W,...",
        help="user HHH weights, e.g. helpful=1,harmless=2 (missing names: 0)",
    )
    p.add_argument(
        "--weight-mode",
        choices=["multiply", "fixed"],
        default="multiply",
        help="multiply: router x weights (default); fixed: gates = weights",
    )
    p.add_argument(
        "--allow-negative",
        action="store_true",
        help="allow negative weights (subtracts that expert's task vector)",
    )
    p.add_argument(
        "--refusal-tau",
        type=float,
        default=None,
        metavar="TAU",
        help="refusal dial: harmless expert alone where calibrated p(harmless) > TAU",
    )
    p.add_argument("--top-k", type=int, default=None, help="keep the k largest gates (1 = top-1)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="new tokens (default 128)")
    p.add_argument("--show-routing", action="store_true", help="print the gates used per answer")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per prompt: prompt, text, routing"
    )


def _fmt(named: dict[str, float] | None) -> str:
    return "-" if named is None else " ".join(f"{k} {v:.2f}" for k, v in named.items())


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Load MODEL once, answer every prompt in one batch, print the answers."""
    from trinityx.model.composed import TrinityXModel

    prompts = read_prompts(args.prompts)
    model = TrinityXModel.from_pretrained(args.model)
    if args.preset is not None and args.refusal_tau is not None:
        raise ValueError("--refusal-tau comes with the preset already; give one or the other")
    hhh = args.hhh
    if args.preset is None and args.weight_mode == "fixed" and hhh is None:
        raise ValueError("--weight-mode fixed needs --hhh weights (gates = weights, no router)")
    res = model.generate(
        prompts,  # each chat-templated as one user turn
        hhh_weights=hhh,
        weight_mode=args.weight_mode,
        allow_negative=args.allow_negative,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        preset=args.preset,
        refusal_tau=args.refusal_tau,
        do_sample=False,
    )
    rows = [
        {"prompt": p, "text": t.strip(), "routing": r}
        for p, t, r in zip(prompts, res.texts, res.routing or [None] * len(prompts), strict=True)
    ]
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
            continue
        if len(rows) > 1:
            print(f"> {row['prompt']}")
        print(row["text"])
        if args.show_routing and row["routing"] is not None:
            print(
                f"  [gates: {_fmt(row['routing']['gates'])} | router: "
                f"{_fmt(row['routing']['router_probs'])}]"
            )
        if len(rows) > 1:
            print()
    return rows
