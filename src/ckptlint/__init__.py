"""ckptlint: check PyTorch checkpoints before you load them.

``import ckptlint`` imports no torch; nothing here executes a checkpoint. The API
(:func:`check`, :func:`inspect` and the result types) is described in docs/api.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, CkptlintError
from .findings import Finding
from .inventory import FormatFacts, GlobalRef, Inventory, StorageRecord, TensorRecord
from .limits import DEFAULT_LIMITS, Limits
from .results import Blocker, FileReport, Report, Verdict
from .sources import CheckInput, SupportsReadBytes
from .version import __version__

if TYPE_CHECKING:
    from .checker import check
    from .compat_report import CompatFix, CompatReport
    from .conversion.api import convert


__all__ = [
    "Blocker",
    "CheckInput",
    "CheckpointError",
    "CkptlintError",
    "CompatFix",
    "CompatReport",
    "FileReport",
    "Finding",
    "FormatFacts",
    "GlobalRef",
    "Inventory",
    "Limits",
    "Report",
    "StorageRecord",
    "SupportsReadBytes",
    "TensorRecord",
    "Verdict",
    "__version__",
    "check",
    "convert",
    "inspect",
]


def inspect(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Read a checkpoint's structure statically: no code from the file runs, no tensor bytes are read.

    Raises :class:`CheckpointError` (with a one-line ``reason``) for input that
    cannot be read as a checkpoint, FIFOs and devices included (they are never opened).
    """
    from .formats import read_inventory
    from .sources import special_file

    path = os.fspath(path)
    special = special_file(path)
    if special is not None:
        raise CheckpointError(path, special, "unreadable")
    return read_inventory(path, limits)


def __getattr__(name: str) -> Any:
    """``ckptlint.check`` is :func:`ckptlint.checker.check`, imported on first use (the engine is not
    needed to ``import ckptlint``), as are the compatibility result types; type checkers see them through
    the imports above."""
    if name == "check":
        from .checker import check

        return check
    if name in ("CompatFix", "CompatReport"):  # made only by a check with a target (ckptlint.compat_report)
        from . import compat_report

        return getattr(compat_report, name)
    if name == "convert":
        from .conversion.api import convert

        return convert
    raise AttributeError(f"module 'ckptlint' has no attribute {name!r}")
