"""Every exception ckptlint raises on purpose, in one place, each with structured fields.

Front ends catch :class:`CkptlintError` once (``cli.main``) and print ``str(error)``
as one line with exit status 2; the library never prints. Per-file reading errors
(:class:`CheckpointError`) become a file's ``error`` and a CK901/CK902 finding in
``check`` instead.
"""

from __future__ import annotations


class CkptlintError(Exception):
    """Base class for every error ckptlint raises on purpose; ``str()`` is the one line to show."""


class UsageError(CkptlintError):
    """Options that do not fit together (``--model-kwargs`` without ``--model``, an unknown format …)."""


class OutputError(CkptlintError):
    """A report or snapshot file that cannot be written (``-o FILE``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: cannot write: {reason}")
        self.path = path
        self.reason = reason


class CheckpointError(CkptlintError):
    """A file could not be read as a checkpoint; ``reason`` is one plain line.

    ``format`` names what the file was recognised as, where that is known
    (``"python-pth"``, ``"text"``, ``"empty"`` …; a :data:`ckptlint.vocab.FormatKind`),
    so front ends can decide to skip rather than fail.
    """

    def __init__(self, path: str, reason: str, format: str | None = None, *, limit: str | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.format = format
        self.limit = limit
        """The :class:`~ckptlint.limits.Limits` field when a whole-file bound ended the reading."""


class FormatError(CkptlintError):
    """Malformed or hostile content inside a file; the reader adds the path."""


class CallRaises(FormatError):
    """A call the real load makes raises there (torch's argument checks): the stream stops, which is
    not the same as a call whose shape ckptlint does not interpret."""


class TruncatedPickle(FormatError):
    """A pickle stream ended early; a reader holding only part of a file may read more."""


class ZipStructureError(FormatError):
    """miniz refuses the archive; ``mz_error`` is its error string (what torch prints)."""

    def __init__(self, mz_error: str, what: str = "reading zip archive") -> None:
        super().__init__(f"PytorchStreamReader failed {what}: {mz_error}")
        self.mz_error = mz_error


class LimitExceeded(FormatError):
    """A whole-file bound (``Limits.<field>``) was hit; the message names it."""

    def __init__(self, field: str, limit: int, what: str) -> None:
        super().__init__(f"limit {field}={limit} exceeded ({what})")
        self.field = field
        self.limit = limit


class ConfigError(CkptlintError):
    """A configuration file (or baseline) that cannot be used; the message names the file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class TargetError(CkptlintError):
    """A target model that cannot be resolved, built or read (spec, kwargs, snapshot)."""

    def __init__(self, message: str, *, spec: str | None = None) -> None:
        super().__init__(message)
        self.spec = spec


class UnwrapError(CkptlintError):
    """No state_dict where the user (``--key``) or the search said it would be."""


class PluginError(CkptlintError):
    """A plugin that fails to load, declares bad rules, raises, or emits a code nobody declared.

    ``plugin`` names it (the entry-point or module name) so its author sees whose it is."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(f"plugin {plugin}: {message}" if plugin else message)
        self.plugin = plugin
        self.detail = message


# -- convert (ckptlint.conversion re-exports these where they are raised) --


class ConvertError(CkptlintError):
    """The conversion cannot be done as asked (a hostile source without ``force``, unsupported tensors without
    ``skip_unsupported``, no verified fix …); ``str()`` is one line naming what and why. Nothing is written."""


class Refused(ConvertError):
    """The source references dangerous globals (``globals``): refused unless ``force``. Nothing ran."""

    def __init__(self, message: str, globals: tuple[str, ...]) -> None:
        super().__init__(message)
        self.globals = globals


class TensorBytesError(CkptlintError):
    """A tensor whose bytes cannot be written; ``key`` is its state_dict key, ``reason`` one plain line."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"tensor {key!r}: {reason}")
        self.key = key
        self.reason = reason


class UnsupportedTensor(TensorBytesError):
    """A tensor safetensors cannot hold or ckptlint cannot read statically (complex128, quantized, sparse,
    meta, a storage only running the file would build): ``--skip-unsupported`` may leave it out."""


class TensorDataError(TensorBytesError):
    """The file does not hold the bytes the tensor needs (missing or short record, a deflate stream torch
    cannot read, a view past its storage): ``torch.load`` fails on it too, so nothing is written."""


__all__ = ["CheckpointError", "CkptlintError", "ConfigError", "ConvertError", "FormatError", "LimitExceeded",
           "OutputError", "PluginError", "Refused", "TargetError", "TensorBytesError", "TensorDataError",
           "TruncatedPickle", "UnsupportedTensor", "UnwrapError", "UsageError", "ZipStructureError"]
