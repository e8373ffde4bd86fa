"""Errors that end the reading of one file with a one-line reason."""

from __future__ import annotations


class CkptlintError(Exception):
    """Base class for every error ckptlint raises on purpose."""


class CheckpointError(CkptlintError):
    """A file could not be read as a checkpoint; ``reason`` is one plain line.

    ``format`` names what the file was recognised as, where that is known
    (``"python-pth"``, ``"text"``, ``"empty"`` …), so front ends can decide to
    skip rather than fail.
    """

    def __init__(self, path: str, reason: str, format: str | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.format = format


class FormatError(CkptlintError):
    """Malformed or hostile content inside a file; the reader adds the path."""


class TruncatedPickle(FormatError):
    """A pickle stream ended early; a reader holding only part of a file may read more."""


class LimitExceeded(FormatError):
    """A whole-file bound (``Limits.<field>``) was hit; the message names it."""

    def __init__(self, field: str, limit: int, what: str) -> None:
        super().__init__(f"limit {field}={limit} exceeded ({what})")
        self.field = field
        self.limit = limit
