"""Readers that turn a checkpoint file into an Inventory without executing it."""

from __future__ import annotations

import os
import struct

from ..errors import CheckpointError, FormatError
from ..inventory import Inventory
from ..limits import DEFAULT_LIMITS, Limits
from .common import CountingFile
from .legacy import read_pickle_file, read_tar
from .safetensors import read_safetensors
from .sharded import parse_index, read_sharded
from .sniff import NOT_CHECKPOINT_REASONS, classify_text, sniff
from .torchzip import read_torch_zip

__all__ = ["read_inventory", "sniff_kind", "NOT_CHECKPOINT_REASONS"]


def sniff_kind(path: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """What the file looks like (``python-pth``, ``zip``, ``pickle`` …), reading only its head."""
    try:
        f = CountingFile(path)
    except OSError:
        return None
    try:
        kind = sniff(f, path, limits)
    except (OSError, *_DECODE_ERRORS):
        return None
    finally:
        f.close()
    if kind != "maybe-text":
        return kind
    try:  # a protocol-0 pickle is text too: only what fails to parse as one is a site .pth file
        return read_inventory(path, limits).format
    except CheckpointError as e:
        return e.format

# Content errors a hostile file can provoke in the standard library while we
# decode it; each becomes a one-line reason, never a traceback.
_DECODE_ERRORS = (FormatError, ValueError, OverflowError, struct.error, UnicodeError,
                  RecursionError, MemoryError, EOFError)


def read_inventory(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Read ``path`` statically; raises CheckpointError with a one-line reason."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, not a file", "directory")
    try:
        f = CountingFile(path)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file", "missing") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot open: {e.strerror or e}", "unreadable") from None
    kind = "unknown"
    try:
        kind = sniff(f, path, limits)
        if kind in NOT_CHECKPOINT_REASONS:
            raise CheckpointError(path, NOT_CHECKPOINT_REASONS[kind], kind)
        if kind == "zip":
            return read_torch_zip(f, path, limits)
        if kind == "torch-preview":
            raise CheckpointError(path, "PyTorch preview archive (PYTORCH1), which torch no longer reads", kind)
        if kind == "torch-tar":
            return read_tar(f, path, limits)
        if kind == "safetensors":
            return read_safetensors(f, path, limits)
        if kind == "sharded-index":
            index = parse_index(f.pread(0, f.size))
            assert index is not None
            return read_sharded(f, path, index, read_inventory, limits)
        if kind == "pickle":
            return read_pickle_file(f, path, limits)
        try:
            return read_pickle_file(f, path, limits)
        except _DECODE_ERRORS:
            text_kind = classify_text(f, path, limits)
            raise CheckpointError(path, NOT_CHECKPOINT_REASONS[text_kind], text_kind) from None
    except CheckpointError:
        raise
    except _DECODE_ERRORS as e:
        reason = str(e) if isinstance(e, FormatError) else f"malformed content ({type(e).__name__}: {e})"
        raise CheckpointError(path, reason.splitlines()[0] if reason else type(e).__name__, kind) from None
    except OSError as e:
        raise CheckpointError(path, f"read error: {e.strerror or e}", kind) from None
    finally:
        f.close()
