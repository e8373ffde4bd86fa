"""ckptlint: check PyTorch checkpoints before you load them.

``import ckptlint`` imports no torch; nothing here executes a checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, CkptlintError
from .inventory import FormatFacts, GlobalRef, Inventory, StorageRecord, TensorRecord
from .limits import DEFAULT_LIMITS, Limits
from .version import __version__

if TYPE_CHECKING:
    from .results import Report


__all__ = [
    "CheckpointError",
    "CkptlintError",
    "FormatFacts",
    "GlobalRef",
    "Inventory",
    "Limits",
    "StorageRecord",
    "TensorRecord",
    "__version__",
    "check",
    "inspect",
]


def inspect(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Read a checkpoint's structure statically: no code from the file runs, no tensor bytes are read.

    Raises :class:`CheckpointError` (with a one-line ``reason``) for input that
    cannot be read as a checkpoint.
    """
    from .formats import read_inventory

    return read_inventory(path, limits)


def check(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], **options: Any) -> Report:
    """Check one or more files statically; returns a :class:`ckptlint.results.Report`.

    Options are those of :func:`ckptlint.checker.check` (``trusted``, ``config`` …).
    """
    from .checker import check as _check

    return _check(paths, **options)
