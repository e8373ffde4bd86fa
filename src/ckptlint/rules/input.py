"""CK9xx: input that could not be checked, or not to its end. The checker reports CK901/CK902 for files it
could not read; CK903/CK904 come from the stops the reader recorded in a file it did read."""

from __future__ import annotations

from ..findings import Finding
from ..inventory import Inventory, StreamStop
from ..plugin import FileContext, hookimpl
from ..record import replace
from ..results import FileReport, Report
from ..rule import Rule
from ..vocab import NOT_A_CHECKPOINT, NotACheckpoint

UNREADABLE = Rule("CK901", "unreadable-file", "error", "the file could not be read as a checkpoint")
NOT_CHECKPOINT = Rule("CK902", "not-a-checkpoint", "error",
                      "the file is not a checkpoint (empty, text, a .pth path file …)")
LIMIT_EXCEEDED = Rule("CK903", "limit-exceeded", "error",
                      "a whole-file bound stopped the reading: what follows was not checked")
PICKLE_STOPS = Rule("CK904", "pickle-stops", "warning",
                    "a pickle torch.load reads stops where CPython raises: the load fails after running what "
                    "came before")
RULES = [UNREADABLE, NOT_CHECKPOINT, LIMIT_EXCEEDED, PICKLE_STOPS]

NOTE_KINDS: tuple[NotACheckpoint, ...] = ("empty", "text", "python-pth", "unknown", "numpy", "archive")
"""Plainly not a checkpoint: ``--skip-non-checkpoints`` (the pre-commit hooks) skips these with a note.
Not an LFS pointer (it stands in for a checkpoint nobody checked) and nothing a reader recognised as
a checkpoint and failed on (CK901: a cut-short zip, a pickle that breaks, a lying header)."""


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
    return stop_findings(context.inventory)


def input_finding(reason: str, kind: str | None, limit: str | None = None) -> Finding:
    """CK903 when a bound ended the reading, CK902 when the reader recognised something that is no
    checkpoint at all, else CK901."""
    if limit is not None:
        return LIMIT_EXCEEDED.finding(f"the file could not be checked: {reason}", fix=_raise(limit))
    return (NOT_CHECKPOINT if kind in NOT_A_CHECKPOINT else UNREADABLE).finding(reason)


def stop_findings(inv: Inventory) -> list[Finding]:
    """One finding per bound hit (CK903) and per loaded stream that stops early (CK904).

    Stops in streams torch.load never reads (hidden pickles, the other reading of a FRAME) are the
    safety rules' business; what ran before every stop is already in the inventory and judged there."""
    loaded = set(inv.facts.loaded_streams) or {p.stream for p in inv.pickles}
    out: list[Finding] = []
    limits_seen: set[str] = set()
    streams_seen: set[str] = set()
    for stop in inv.stops:
        if stop.limit is not None:
            if stop.limit not in limits_seen:
                limits_seen.add(stop.limit)
                out.append(LIMIT_EXCEEDED.finding(
                    f"ckptlint stopped at its {stop.limit} bound: {stop.reason}; everything before it is "
                    "reported, what follows was not checked", location=_where(stop), fix=_raise(stop.limit)))
        elif stop.stream in loaded and stop.stream not in streams_seen:
            streams_seen.add(stop.stream)
            out.append(PICKLE_STOPS.finding(
                f"{stop.stream} stops where CPython's unpickler raises: {stop.reason}; torch.load fails "
                "there, after running everything before it", location=_where(stop)))
    return out


def _where(stop: StreamStop) -> str:
    return f"{stop.stream}@{stop.offset}" if stop.offset >= 0 else stop.stream


def _raise(limit: str) -> str:
    return (f"if the file is trusted to be this large, check it with a higher bound: "
            f"ckptlint.check(path, limits=dataclasses.replace(ckptlint.DEFAULT_LIMITS, {limit}=...))")


def skip_not_checkpoints(report: Report) -> tuple[Report, list[FileReport]]:
    """The report without the files that are plainly not checkpoints (NOTE_KINDS), and those files
    (each prints one note: ``PATH: skipped: REASON``)."""
    skipped = [fr for fr in report.files if fr.error is not None and fr.format in NOTE_KINDS]
    return replace(report, files=tuple(fr for fr in report.files if fr not in skipped)), skipped
