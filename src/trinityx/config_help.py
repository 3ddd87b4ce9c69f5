"""`--help` for config-driven commands: every config key with its type, default and meaning.

Read from the dataclasses themselves (the string literal under each field), so the help a user
sees and the docstring a developer edits are one text.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under a dataclass field), via the class source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe(cls: type, prefix: str = "") -> list[str]:
    """One line per config key (nested dataclasses flattened to dotted keys)."""
    lines = []
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            lines.append(f"  {key}:  ({tp.__name__}) {inspect.getdoc(tp) or ''}".rstrip())
            lines.extend(describe(tp, key + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "REQUIRED"
        tname = tp.__name__ if isinstance(tp, type) else str(tp)
        tname = tname.replace("typing.", "").replace("trinityx.config.", "")
        doc = docs.get(f.name, "")
        lines.append(f"  {key} = {default}  [{tname}]" + (f"\n      {doc}" if doc else ""))
    return lines
