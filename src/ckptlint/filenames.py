"""Which file names are checkpoints: one list for directory walks and the pre-commit hooks; and
where the repository a path lies in begins.

Defined once so ``ckptlint check DIR`` and the hooks' ``files:`` pattern cannot drift
apart. The name only decides what a walk picks up; the content decides the format.
Imports nothing of ckptlint, so every layer may use it.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Final

CHECKPOINT_SUFFIXES: Final[tuple[str, ...]] = (
    ".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pkl", ".pickle", ".pth.tar", ".tar", ".npy", ".npz",
    ".index.json",
)
"""File name endings (compared case-insensitively) that a directory walk checks."""

_SIMPLE = tuple(s[1:] for s in CHECKPOINT_SUFFIXES if s.count(".") == 1)
_COMPOUND = tuple(s for s in CHECKPOINT_SUFFIXES
                  if s.count(".") > 1 and not s.endswith(tuple(f".{x}" for x in _SIMPLE)))

HOOK_FILES_PATTERN: Final[str] = (f"(?i)(\\.({'|'.join(_SIMPLE)})|" + "|".join(re.escape(s) for s in _COMPOUND)
                                  + ")$")
"""The same set as a regular expression, for ``files:`` in ``.pre-commit-hooks.yaml``:
``(?i)(\\.(pt|pth|…|npz)|\\.index\\.json)$`` (``.pth.tar`` is covered by ``.tar``)."""


def is_checkpoint_name(name: str) -> bool:
    """Whether a file called ``name`` is one a directory walk checks (``*.index.json`` included)."""
    return name.lower().endswith(CHECKPOINT_SUFFIXES)


def special_kind(path: str) -> str | None:
    """``"a FIFO"``, ``"a character device"``, ``"a block device"``, ``"a socket"`` or None, from ``stat``
    alone: opening a FIFO for reading blocks until a writer comes and ``/dev/zero`` never ends, so every
    file ckptlint reads (checkpoints, configs, baselines, snapshots) is asked this first."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # the reader says what is wrong (missing, unreadable, a link loop)
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else None)


__all__ = ["CHECKPOINT_SUFFIXES", "HOOK_FILES_PATTERN", "is_checkpoint_name", "special_kind"]


def repository_root(start: str | os.PathLike[str]) -> str | None:
    """The nearest folder at or above ``start`` with a ``.git`` entry (a folder, or a worktree's file):
    the git work tree a walk asks git about and the root SARIF paths are relative to; None outside one."""
    d = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def fnmatchcase(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase``, imported when a glob is first matched, not at import (startup)."""
    from fnmatch import fnmatchcase as match

    return match(name, pattern)
