"""Closed vocabularies, defined once: severities, format kinds, global categories, blocker kinds.

Each is a ``Literal`` type (so mypy checks every spelling) plus the tuple of its
values, derived from the type, for code that iterates or validates. The JSON
contract (docs/report-json.md, schemas/report.schema.json) uses these strings.
"""

from __future__ import annotations

from typing import Final, Literal, cast, get_args

Severity = Literal["error", "warning", "info"]
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)
"""Worst first."""

SEVERITY_RANK: Final[dict[str, int]] = {"error": 2, "warning": 1, "info": 0}
"""Higher is worse."""


def severity_rank(severity: str) -> int:
    """Higher is worse: error 2, warning 1, info 0 (anything else 0)."""
    return SEVERITY_RANK.get(severity, 0)


def is_severity(value: object) -> bool:
    return value in SEVERITIES


ReadableFormat = Literal["torch-zip", "torchscript", "torch-legacy", "torch-tar", "pickle", "safetensors",
                         "sharded-index", "dcp", "torch-export"]
"""What a readable file is (``Inventory.format``)."""
READABLE_FORMATS: Final[tuple[ReadableFormat, ...]] = get_args(ReadableFormat)

NotACheckpoint = Literal["empty", "text", "python-pth", "lfs-pointer", "unknown", "directory", "numpy", "archive"]
"""What a file that is no checkpoint at all was recognised as (CK902, not CK901)."""
NOT_A_CHECKPOINT: Final[tuple[NotACheckpoint, ...]] = get_args(NotACheckpoint)

UnreadableFormat = Literal["missing", "unreadable", "torch-preview", "zip", "maybe-text", "npy"]
"""Kinds an unreadable file can carry besides the above: no file, an OS error, the PYTORCH1
preview archive, and the sniffer's intermediate kinds (a zip, text-like or numpy .npy file whose reading failed)."""
UNREADABLE_FORMATS: Final[tuple[UnreadableFormat, ...]] = get_args(UnreadableFormat)

FormatKind = Literal[ReadableFormat, NotACheckpoint, UnreadableFormat]
"""Every ``format`` string the readers produce, readable or not (JSON ``files[].format``)."""
FORMAT_KINDS: Final[tuple[FormatKind, ...]] = (*READABLE_FORMATS, *NOT_A_CHECKPOINT, *UNREADABLE_FORMATS)



def format_kind(value: str) -> FormatKind:
    """A reader's format string as the vocabulary type. Not checked at run time (a new kind must still
    reach the report); tests/test_core_vocab.py proves every string the readers produce is listed here."""
    return cast("FormatKind", value)


LEGACY_FORMATS: Final[tuple[FormatKind, ...]] = ("torch-legacy", "torch-tar")
"""The formats torch reads only for old checkpoints (``forbid-legacy-format``)."""

Category = Literal["allowed", "data", "model", "dangerous", "unknown"]
"""What a referenced global is: weights_only allows it; plain data it refuses; a model class
(full-model pickle); a dangerous callable; or unknown."""
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

BlockerKind = Literal["global", "opcode", "structure", "format"]
"""Why ``torch.load(weights_only=True)`` refuses: a global, an opcode, a structure (a class that
must be allowlisted), or the file format itself."""
BLOCKER_KINDS: Final[tuple[BlockerKind, ...]] = get_args(BlockerKind)

RuleCategory = Literal["safety", "compatibility", "device", "hygiene", "input", "plugin"]
"""The group a rule belongs to, from its code (CK1xx safety … CK9xx input; others plugin)."""
RULE_CATEGORIES: Final[tuple[RuleCategory, ...]] = get_args(RuleCategory)

TargetsMode = Literal["all", "snapshots", "none"]
"""Which configured targets ``check`` uses (``--targets``)."""
TARGETS_MODES: Final[tuple[TargetsMode, ...]] = get_args(TargetsMode)

__all__ = [
    "BLOCKER_KINDS",
    "CATEGORIES",
    "FORMAT_KINDS",
    "LEGACY_FORMATS",
    "NOT_A_CHECKPOINT",
    "READABLE_FORMATS",
    "RULE_CATEGORIES",
    "SEVERITIES",
    "SEVERITY_RANK",
    "TARGETS_MODES",
    "UNREADABLE_FORMATS",
    "BlockerKind",
    "Category",
    "FormatKind",
    "NotACheckpoint",
    "ReadableFormat",
    "RuleCategory",
    "Severity",
    "TargetsMode",
    "UnreadableFormat",
    "format_kind",
    "is_severity",
    "severity_rank",
]
