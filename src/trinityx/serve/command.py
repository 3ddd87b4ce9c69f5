"""`trinityx serve MODEL`: the command's options and handler, beside the server they start.

The options map one to one onto `serve.app.serve` and `serving.Limits`; the server itself is
imported only when the command runs, so building the CLI's parser stays light.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`trinityx serve`'s options."""
    p.add_argument(
        "model",
        metavar="MODEL",
        help="composed artifact folder (trinityx compose) or any spec `trinityx eval` "
        "accepts: base, expert:<dir>, merge:<method>, hf:<dir>, trinityx:<dir>, ...",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on /v1/* (default: env "
        "TRINITYX_API_KEY, else no key)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="most sequences decoded together in one forward (default 8)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long an idle server waits to fill a batch (default 10 ms)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="eval-config YAML for specs that need more (merge: experts, backbone)",
    )
    p.add_argument("--name", default=None, help="model id clients send (default: MODEL)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="max_tokens when a request gives none (default 256)",
    )
    p.add_argument(
        "--max-tokens-limit",
        type=int,
        default=4096,
        help="largest max_tokens a request may ask for (default 4096)",
    )
    p.add_argument("--max-n", type=int, default=8, help="largest n per request (default 8)")


def run(args: argparse.Namespace) -> Any:
    """Serve MODEL until interrupted."""
    from trinityx.serve.app import serve
    from trinityx.serve.serving import Limits

    limits = Limits(args.max_tokens, args.max_tokens_limit, args.max_n)
    return serve(
        args.model,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        config=args.config,
        name=args.name,
        limits=limits,
    )
