"""Project configuration: ``[tool.ckptlint]`` in pyproject.toml, or a standalone ckptlint.toml.

Found the way ruff and pytest find theirs: the nearest file walking up from the
checked file's folder. A ``ckptlint.toml`` holds the same keys at top level.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from typing import Any

from .errors import ConfigError
from .filenames import fnmatchcase, special_kind
from .record import field, record
from .vocab import SEVERITIES, Severity


@record
class TargetEntry:
    """``[[tool.ckptlint.targets]]``: which model the files matching ``files`` are meant for."""

    files: tuple[str, ...]
    model: str | None = None
    model_kwargs: dict[str, Any] | None = None
    snapshot: str | None = None
    key: str | None = None
    allow_missing: tuple[str, ...] = ()
    allow_unexpected: tuple[str, ...] = ()
    allow_mismatch: tuple[str, ...] = ()




@record
class Config:
    """The effective ``[tool.ckptlint]`` settings of one file (docs/configuration.md)."""

    path: str | None = None
    trusted_globals: tuple[str, ...] = ()
    """Globals (``module.name``) the team trusts: loaded with torch.serialization.safe_globals."""
    targets: tuple[TargetEntry, ...] = ()
    select: tuple[str, ...] = ("",)
    """Code prefixes to report (the empty prefix selects everything)."""
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: dict[str, Severity] = field(default_factory=dict)
    """Code (or prefix) -> severity override."""
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Glob (relative to the config's folder) -> code prefixes ignored for matching files."""
    baseline: str | None = None
    """Accepted findings (absolute path); only new findings are reported."""
    release_files: tuple[str, ...] = ()
    """Globs of release checkpoints: training state inside them is reported (CK402)."""
    max_file_size: int | None = None
    forbid_full_model_pickles: bool = True
    require_weights_only: bool = False
    forbid_legacy_format: bool = False
    require_safetensors: bool = False
    exclude: tuple[str, ...] = ()
    """Globs (relative to the config's folder, or any one path part) a folder walk leaves out (sources.py)."""

    @property
    def base(self) -> str:
        return os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()

    def relative(self, file: str) -> str:
        return os.path.relpath(os.path.abspath(file), self.base).replace(os.sep, "/")

    def matches(self, file: str, globs: tuple[str, ...]) -> bool:
        rel = self.relative(file)
        return any(fnmatchcase(rel, g) for g in globs)

    def target_for(self, file: str) -> TargetEntry | None:
        """The first target whose glob (relative to the config's folder) matches ``file``."""
        if not self.path:
            return None
        base = os.path.dirname(os.path.abspath(self.path))
        rel = os.path.relpath(os.path.abspath(file), base).replace(os.sep, "/")
        for t in self.targets:
            if any(fnmatchcase(rel, g) for g in t.files):
                return t
        return None


KNOWN_KEYS = {"trusted-globals", "targets", "select", "extend-select", "ignore", "severity", "per-file-ignores",
              "baseline", "release-files", "max-file-size", "forbid-full-model-pickles", "require-weights-only",
              "forbid-legacy-format", "require-safetensors", "exclude"}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
TARGET_KEYS = {"files", "model", "model-kwargs", "snapshot", "key", "allow-missing", "allow-unexpected",
               "allow-mismatch"}


def find_config(start: str, seen: dict[str, str | None] | None = None) -> str | None:
    """The nearest ckptlint.toml, or pyproject.toml with a [tool.ckptlint] table, above ``start``.

    ``seen``: the answers already found per folder in this run (many files of one folder share one walk)."""
    d = os.path.abspath(start if os.path.isdir(start) else os.path.dirname(start) or ".")
    if seen is None:
        return _walk_up(d)
    if d not in seen:
        seen[d] = _walk_up(d)
    return seen[d]


def _walk_up(d: str) -> str | None:
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


_OUR_TABLE = r"^[ \t]*\[\[?[ \t]*tool[ \t]*\.[ \t]*[\"']?ckptlint\b|^[ \t]*tool[ \t]*\.[ \t]*ckptlint\b"
"""Compiled (re's cache) when a pyproject.toml is first looked at, not at import (startup)."""


def _has_tool_table(path: str) -> bool:
    """Whether this pyproject.toml configures ckptlint. One that does not parse is an error when its text
    holds a ``[tool.ckptlint…]`` table (it is the config in use: ignoring it would turn the policies off
    silently); a broken pyproject.toml without one is someone else's problem and is passed over."""
    try:
        return "ckptlint" in _read_toml(path).get("tool", {})
    except ConfigError:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(4 * 1024 * 1024)
        except OSError:
            return False
        if re.search(_OUR_TABLE, text, re.MULTILINE):
            raise
        return False


def _read_toml(path: str) -> dict[str, Any]:
    what = special_kind(path)
    if what is not None:  # a FIFO would block the open, /dev/zero never ends
        raise ConfigError(f"{path}: not a regular file ({what}): give a pyproject.toml or ckptlint.toml", path=path)
    if sys.version_info >= (3, 11):  # imported here: only a check that finds a config file parses TOML (startup)
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}", path=path) from None


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
    targets = tuple(_target_entry(path, i, t) for i, t in enumerate(_list(path, table, "targets")))
    where = "[tool.ckptlint]"
    severity = table.get("severity", {})
    if not isinstance(severity, dict) or not all(v in SEVERITIES for v in severity.values()):
        raise ConfigError(f"{path}: severity must map codes to one of {', '.join(SEVERITIES)}")
    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise ConfigError(f"{path}: per-file-ignores must map globs to lists of codes")
    per_file = {g: _codes(path, "per-file-ignores", pfi, g) for g in pfi}
    baseline = table.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise ConfigError(f"{path}: baseline must be a path")
    flags = {}
    for key in ("forbid-full-model-pickles", "require-weights-only", "forbid-legacy-format", "require-safetensors"):
        value = table.get(key, key == "forbid-full-model-pickles")
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {key} must be true or false")
        flags[key.replace("-", "_")] = value
    select = _codes(path, where, table, "select") if "select" in table else ("",)
    if not select:
        raise ConfigError(f"{path}: {where}.select is empty: nothing would be reported (\"ALL\" selects every rule)")
    return Config(
        path, tuple(trusted), targets, select, _codes(path, where, table, "extend-select"),
        _codes(path, where, table, "ignore"), {k.strip().upper(): v for k, v in severity.items()}, per_file,
        os.path.join(os.path.dirname(os.path.abspath(path)), baseline) if baseline else None,
        _strings(path, where, table, "release-files"), parse_size(path, table.get("max-file-size")), **flags,
        exclude=_strings(path, where, table, "exclude"))


def parse_size(path: str, value: Any) -> int | None:
    """``2000000``, ``"500 MB"``, ``"2GiB"`` -> bytes."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        num = text.rstrip("kmgtib")
        unit = text[len(num):]
        try:
            n = float(num)
        except ValueError:
            n = -1
        if unit in _SIZE_UNITS and n > 0:
            return int(n * _SIZE_UNITS[unit])
    raise ConfigError(f"{path}: max-file-size must be a size such as 2000000 or \"2 GB\"")


def _list(path: str, table: dict[str, Any], key: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {key} must be a list")
    return value


def _strings(path: str, where: str, table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {where}.{key} must be a list of strings")
    return tuple(value)


def _codes(path: str, where: str, table: dict[str, Any], key: str) -> tuple[str, ...]:
    """Code prefixes as the command line reads them (upper case); an empty one is an error (it would
    match every code), ``ALL`` is the way to say that. Registry checks are selection.check_config's."""
    codes = tuple(c.strip().upper() for c in _strings(path, where, table, key))
    if "" in codes:
        raise ConfigError(f"{path}: {where}.{key}: an empty code (\"ALL\" selects every rule)")
    return codes


def _target_entry(path: str, i: int, t: Any) -> TargetEntry:
    where = f"targets[{i}]"
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: {where} must be a table")
    unknown = sorted(set(t) - TARGET_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {where}: unknown key(s) {', '.join(unknown)}")
    files = _strings(path, where, t, "files")
    if not files:
        raise ConfigError(f"{path}: {where} needs files = [glob, ...]")
    if not t.get("model") and not t.get("snapshot"):
        raise ConfigError(f"{path}: {where} needs a model or a snapshot")
    kwargs = t.get("model-kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigError(f"{path}: {where}.model-kwargs must be a table")
    snapshot = t.get("snapshot")
    if snapshot is not None:
        snapshot = os.path.join(os.path.dirname(os.path.abspath(path)), str(snapshot))
    for k in ("model", "key"):
        if k in t and not isinstance(t[k], str):
            raise ConfigError(f"{path}: {where}.{k} must be a string")
    return TargetEntry(files, t.get("model"), kwargs, snapshot, t.get("key"),
                       _strings(path, where, t, "allow-missing"), _strings(path, where, t, "allow-unexpected"),
                       _strings(path, where, t, "allow-mismatch"))


def config_for(file: str, explicit: str | None = None, seen: dict[str, str | None] | None = None) -> Config:
    """The configuration that applies to ``file`` (an explicit ``--config`` wins); ``seen``: see find_config."""
    path = explicit or find_config(file, seen)
    return load_config(os.path.abspath(path)) if path else Config()
