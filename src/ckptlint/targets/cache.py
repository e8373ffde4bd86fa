"""A cache of target signatures, so that repeated checks against a model class need no torch.

Building a target imports torch (about a second and several hundred MB even for
a meta build). The signature that build produces is stored with the files of
every module imported to produce it (their size, mtime and, outside
site-packages, a content hash) and the installed torch version; a later lookup
uses it only while all of them are unchanged. Targets with custom load logic
are not cached: they need the live model for torch's exact verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from typing import Any

from .signature import Signature

CACHE_VERSION = 1


def cache_dir() -> str | None:
    """``$CKPTLINT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ckptlint``, else ``~/.cache/ckptlint``;
    None when ``CKPTLINT_NO_CACHE`` is set."""
    if os.environ.get("CKPTLINT_NO_CACHE"):
        return None
    explicit = os.environ.get("CKPTLINT_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ckptlint")


def _key(spec: str, kwargs: dict[str, Any]) -> str:
    text = json.dumps({"spec": spec, "kwargs": kwargs, "v": CACHE_VERSION}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def _stamp(path: str) -> list[Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp: list[Any] = [path, st.st_size, st.st_mtime_ns]
    if "site-packages" not in path and "dist-packages" not in path and st.st_size <= 4 << 20:
        with open(path, "rb") as f:
            stamp.append(hashlib.sha256(f.read()).hexdigest())
    return stamp


def module_files(names: set[str]) -> list[str]:
    """Source files of the given modules, torch's own excluded (its version stands for them)."""
    files = []
    for name in sorted(names):
        if name == "torch" or name.startswith("torch."):
            continue
        f = getattr(sys.modules.get(name), "__file__", None)
        if f and os.path.isfile(f):
            files.append(f)
    return files


def lookup(spec: str, kwargs: dict[str, Any]) -> Signature | None:
    d = cache_dir()
    if d is None:
        return None
    path = os.path.join(d, "targets", _key(spec, kwargs) + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("cache_version") != CACHE_VERSION or entry.get("torch") != _torch_version():
            return None
        for dep in entry["deps"]:
            if _stamp(dep[0]) != dep:
                return None
        return Signature.from_json(entry["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    except Exception:  # noqa: BLE001 - a damaged cache entry is a miss, never an error
        return None


def store(spec: str, kwargs: dict[str, Any], sig: Signature, modules: set[str], files: list[str] | None = None) -> None:
    """``files``: other files the build read (config files): stamped like module files."""
    d = cache_dir()
    if d is None or any(m.load_rule == "custom" for m in sig.modules):
        return
    deps = [s for s in (_stamp(f) for f in module_files(modules) + list(files or ())) if s is not None]
    entry = {"cache_version": CACHE_VERSION, "spec": spec, "kwargs": kwargs, "torch": _torch_version(),
             "deps": deps, "signature": sig.to_json()}
    try:
        os.makedirs(os.path.join(d, "targets"), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.join(d, "targets"), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.replace(tmp, os.path.join(d, "targets", _key(spec, kwargs) + ".json"))
    except OSError:
        pass  # a read-only cache is no cache
