"""Which files a target build read: a factory that reads a config (``from_config(json)``,
``from_pretrained`` on a local folder) depends on it, so the target cache must key on it too.

Recorded with CPython's ``open`` audit event while the build runs (audit hooks cannot be removed:
one is installed once and does nothing outside a recording).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_active: list[set[str]] = []
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _active or event != "open" or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str):
        _active[-1].add(os.path.abspath(path))


@contextmanager
def recording() -> Iterator[set[str]]:
    """The set fills with every path opened inside the block (files and folders alike)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    seen: set[str] = set()
    _active.append(seen)
    try:
        yield seen
    finally:
        _active.pop()


def data_files(paths: set[str]) -> list[str]:
    """The regular files among ``paths`` that are not Python sources or compiled modules (the cache
    stamps those through the imported modules)."""
    skip = (".py", ".pyc", ".so", ".pyd", ".pth")
    return sorted(p for p in paths if not p.endswith(skip) and not p.startswith(("/proc/", "/dev/", "/sys/"))
                  and os.path.isfile(p))
