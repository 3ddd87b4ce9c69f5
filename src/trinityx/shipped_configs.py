"""The YAML configs shipped inside the package: list them, find one by name, copy them out.

The repository's `configs/` folder is package data (`src/trinityx/configs` links to it), so an
installed wheel carries `tiny/`, `smollm2/` (with the demo's `smollm2/demo/`) and the rest.
`trinityx demo` reads its configs from here, and every stage's `--config` falls back to a shipped
name when no such file exists (`trinityx train-expert -c tiny/helpful.yaml` from any folder).
Like torchtune's `tune ls` / `tune cp`: `trinityx configs ls`, `trinityx configs cp NAME DEST`.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().with_name("configs")


def list_configs() -> list[str]:
    """Every shipped config as a name relative to the configs folder (`tiny/helpful.yaml`)."""
    return sorted(p.relative_to(CONFIG_ROOT).as_posix() for p in CONFIG_ROOT.rglob("*.yaml"))


def _candidates(name: str) -> list[Path]:
    rel = name.removeprefix("configs/").strip("/")
    return [CONFIG_ROOT / rel, CONFIG_ROOT / f"{rel}.yaml"]


def find_config(name: str) -> Path:
    """The shipped file or folder called `name` (`tiny/helpful.yaml`, `tiny/helpful`, `tiny`)."""
    for path in _candidates(name):
        if path.exists():
            return path
    wanted = name.removeprefix("configs/").removesuffix(".yaml") + ".yaml"
    close = difflib.get_close_matches(wanted, list_configs(), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise FileNotFoundError(
        f"no shipped config called {name!r}{hint}; `trinityx configs ls` lists them"
    )


def resolve_config_arg(path: str | None) -> str | Path | None:
    """A `--config` argument: the file itself when it exists, else the shipped config of that
    name, else the argument unchanged (so the loader reports the missing file as before)."""
    if path is None or Path(path).is_file():
        return path
    for candidate in _candidates(path):
        if candidate.is_file():
            return candidate
    return path


def copy_config(name: str, dest: str | Path, force: bool = False) -> Path:
    """Copy a shipped config file (or folder of configs) to `dest` to edit; refuses to overwrite
    unless `force`. A folder `dest` that exists receives the file under its own name."""
    src, dest = find_config(name), Path(dest)
    if src.is_file() and dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not force:
        raise FileExistsError(f"{dest} exists; choose another destination or pass --force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=force)
    else:
        shutil.copyfile(src, dest)
    return dest
