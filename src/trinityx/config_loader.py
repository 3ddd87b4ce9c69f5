"""One strict YAML loader for every stage's config dataclass.

`load_config(Cls, path, overrides)` fills a dataclass from YAML and dotted `key=value` overrides and
reports every problem at once (unknown keys, wrong types, bad values), each naming its YAML path.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does.

    PyYAML implements YAML 1.1, whose float pattern needs a dot, so `3e-4` or `1e5` would load as
    the *string* '3e-4' and fail the type check of `optim.learning_rate`. YAML 1.2 (and every
    other YAML or JSON reader) reads them as numbers; this resolver does the same.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text safely (no object construction), with YAML 1.2 floats (`3e-4`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


class ConfigError(ValueError):
    """All problems found in one config, one per line, each naming its YAML path."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in config:\n{lines}")


# ---------------------------------------------------------------------------------------------
# Strict loader
# ---------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str, problems: list[str]) -> Any:
    """Check/convert `value` against annotation `tp`; append problems naming `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errs: list[str] = []
        for a in non_none:
            trial: list[str] = []
            out = _convert(value, a, path, trial)
            if not trial:
                return out
            errs.extend(trial)
        problems.append(
            errs[0] if len(non_none) == 1 else f"{path}: {value!r} is not {_type_name(tp)}"
        )
        return value
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            problems.append(f"{path}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return value
        return [_convert(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return value
        return {k: _convert(v, args[1], f"{path}.{k}", problems) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, problems)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a number, got {value!r}")
            return value
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type[T], data: Any, path: str, problems: list[str]) -> T:
    prefix = f"{path}." if path else ""
    if not isinstance(data, dict):
        problems.append(f"{path or '<root>'}: expected a mapping, got {type(data).__name__}")
        return None  # type: ignore[return-value]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            close = [n for n in fields if n.startswith(str(key)[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{prefix}{key}: unknown key{hint}; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}", problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{prefix}{name}: required key missing")
    try:
        return cls(**kwargs)
    except TypeError:  # a required key is missing: already reported above
        return None  # type: ignore[return-value]


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError("override", [f"{dotted}: {k} is not a mapping"])
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b=value` overrides; values are parsed as YAML (`3`, `3e-4`, `true`, `[a, b]`,
    `null`)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError("override", [f"{item!r}: expected key=value (e.g. optim.epochs=3)"])
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), load_yaml(raw))
    return data


def _validate(cfg: Any, path: str, problems: list[str]) -> None:
    """Value checks beyond types (positive sizes, fractions in range)."""
    if not dataclasses.is_dataclass(cfg):
        return
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        p = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(v):
            _validate(v, p, problems)
        elif isinstance(v, list):
            for i, item in enumerate(v):
                _validate(item, f"{p}[{i}]", problems)
        if f.name in {"r", "alpha", "batch_size", "grad_accum", "max_length", "n_bins"} and (
            isinstance(v, int) and v <= 0
        ):
            problems.append(f"{p}: must be > 0, got {v}")
        if f.name in {"learning_rate", "beta", "epochs", "temperature"} and (
            isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0
        ):
            problems.append(f"{p}: must be > 0, got {v}")
        if f.name in {"dropout", "heldout_fraction", "warmup_ratio"} and isinstance(v, float):
            if not 0.0 <= v < 1.0:
                problems.append(f"{p}: must be in [0, 1), got {v}")


def from_dict(cls: type[T], data: dict, source: str = "<dict>") -> T:
    """Build `cls` from a plain dict, reporting every problem at once."""
    problems: list[str] = []
    cfg = _build(cls, data, "", problems)
    if cfg is not None:
        _validate(cfg, "", problems)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load YAML at `path` into `cls`, then apply dotted overrides. Relative data paths are kept
    as written; stages resolve them against `config_dir(cfg)` via `resolve_path`."""
    data: dict = {}
    source = "<overrides>"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        source = str(p)
        try:
            loaded = load_yaml(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(source, [f"invalid YAML: {e}"]) from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(source, [f"top level must be a mapping, got {type(loaded).__name__}"])
        data = loaded
        data.setdefault("_config_dir", str(p.resolve().parent))
    data = apply_overrides(data, overrides or [])
    config_dir = data.pop("_config_dir", None)
    cfg = from_dict(cls, data, source)
    object.__setattr__(cfg, "_config_dir", config_dir)
    return cfg


def resolve_path(cfg: Any, path: str) -> str:
    """Resolve a relative path in a config against the config file's folder (if it exists there)."""
    if ":" in path.split("/")[0] or Path(path).is_absolute():
        return path
    base = getattr(cfg, "_config_dir", None)
    if base is not None and (Path(base) / path).exists():
        return str(Path(base) / path)
    return path


def to_dict(cfg: Any) -> dict:
    """Plain dict of a config (for writing the resolved config into artifacts)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
