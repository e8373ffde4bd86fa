"""Project configuration: ``[tool.ckptlint]`` in pyproject.toml, or a standalone ckptlint.toml.

Found the way ruff and pytest find theirs: the nearest file walking up from the
checked file's folder. A ``ckptlint.toml`` holds the same keys at top level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import CkptlintError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(CkptlintError):
    """A configuration file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Config:
    path: str | None = None
    trusted_globals: tuple[str, ...] = ()
    """Globals (``module.name``) the team trusts: loaded with torch.serialization.safe_globals."""


KNOWN_KEYS = {"trusted-globals"}


def find_config(start: str) -> str | None:
    """The nearest ckptlint.toml, or pyproject.toml with a [tool.ckptlint] table, above ``start``."""
    d = os.path.abspath(start if os.path.isdir(start) else os.path.dirname(start) or ".")
    for _ in range(256):
        for name in ("ckptlint.toml", "pyproject.toml"):
            candidate = os.path.join(d, name)
            if os.path.isfile(candidate) and (name == "ckptlint.toml" or _has_tool_table(candidate)):
                return candidate
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent
    return None


def _has_tool_table(path: str) -> bool:
    try:
        return "ckptlint" in _read_toml(path).get("tool", {})
    except ConfigError:
        return False


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None


@lru_cache(maxsize=64)
def load_config(path: str) -> Config:
    data = _read_toml(path)
    table = data if os.path.basename(path) == "ckptlint.toml" else data.get("tool", {}).get("ckptlint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.ckptlint] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    trusted = table.get("trusted-globals", [])
    if not isinstance(trusted, list) or not all(isinstance(t, str) and "." in t for t in trusted):
        raise ConfigError(f"{path}: trusted-globals must be a list of 'module.name' strings")
    return Config(path, tuple(trusted))


def config_for(file: str, explicit: str | None = None) -> Config:
    """The configuration that applies to ``file`` (an explicit ``--config`` wins)."""
    path = explicit or find_config(file)
    return load_config(os.path.abspath(path)) if path else Config()
