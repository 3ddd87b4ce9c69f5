"""The package's imports run one way and never in a circle.

Walks every module's ``import`` statements (with ``ast``, so nothing is executed) and fails on

- an **upward import**: a module importing from a package in a higher layer, e.g. ``model``
  importing ``stages``;
- a **cycle** between modules, e.g. ``eval/harness.py`` ⇄ a task module of ``eval/tasks/``.

The layer order is the one the README's Layout section states; a new top-level package or module
must be given a layer here, so the order stays written down in one place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trinityx

PACKAGE = Path(trinityx.__file__).parent

# Lower number = lower layer. A module may import its own package and lower layers only; two
# packages on one layer (``bench`` and ``eval``, ``serve`` and ``demo``) may not import each other.
LAYERS: dict[str, int] = {
    "config": 0,  # typed dataclasses and their YAML loader: no other trinityx imports
    "shipped_configs": 0,
    "config_help": 0,  # --help text from the config dataclasses' field docstrings  # the YAML configs shipped as package data
    "data": 1,  # record types, readers, formatting: may read config dataclasses
    "nn": 1,  # pure torch
    "model": 2,  # Hugging Face glue around nn; model/baselines: the systems we compare against
    "bench": 3,  # speed/memory: systems, agreement checks, report
    "eval": 3,  # harness, benchmarks, judges, metrics; builds every baseline spec
    "stages": 4,  # train_expert, compose, calibrate, evaluate, compare: never import each other
    "serve": 5,  # the HTTP server over a composed model or a baseline spec
    "demo": 5,  # the guided pipeline over the stages
    "experiment": 5,  # `trinityx run`: the resumable experiment over the stages, report, ship
    "generate_cli": 5,  # `trinityx generate`: one model call from the terminal
    "cli": 6,  # one subcommand per stage
    "__init__": 7,  # the public face: re-exports from every layer, imported lazily
    "__main__": 7,
}


def _root_constants() -> set[str]:
    """Names the package root defines itself (``__version__``, ``DIMENSIONS``): constants, not
    re-exports, so importing them from any layer is not an upward import."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every trinityx module ``name`` imports (``from pkg import submodule`` counts as that
    submodule; imports inside functions count too: a lazy import is still a dependency)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    constants = _root_constants()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                for a in node.names
                if not (source == "trinityx" and a.name in constants)
            ]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] == "trinityx" and t != name}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _all_modules()
    return {name: _imports(name, path, modules) & set(modules) for name, path in modules.items()}


def _layer_key(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    key = parts[1]
    return "config" if key == "config_loader" else key


def test_every_top_level_package_has_a_layer():
    missing = sorted({_layer_key(m) for m in _graph()} - set(LAYERS))
    assert not missing, f"give these a layer in LAYERS (and the README's Layout): {missing}"


def test_no_upward_import():
    bad = []
    for module, targets in _graph().items():
        src = _layer_key(module)
        for target in targets:
            dst = _layer_key(target)
            if dst == src:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{module} (layer {LAYERS[src]}) imports {target} (layer {LAYERS[dst]})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(sorted(bad))


def test_stages_never_import_each_other():
    bad = [
        f"{m} imports {t}"
        for m, ts in _graph().items()
        if m.startswith("trinityx.stages.")
        for t in ts
        if t.startswith("trinityx.stages.")
    ]
    assert not bad, "stages talk through artifact folders, not imports:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_known_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of ideas
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" ⇄ ".join(c) for c in cycles)
