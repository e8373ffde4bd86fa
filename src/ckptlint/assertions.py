"""Assertion helpers for hand-written tests: failures show what differs, as a table."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from .checker import Report


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(key, p) for p in patterns)


def assert_safe(report: Report) -> None:
    rows = []
    for fr in report.files:
        if fr.error is not None:
            rows.append((fr.path, "unreadable", "", fr.error))
        for f in fr.findings:
            if f.code.startswith("CK1") and f.severity == "error":
                rows.append((fr.path, f.code, f.key or "", f.message))
        if fr.verdict is not None and not fr.verdict.loads:
            rows.append((fr.path, "weights_only", "", fr.verdict.advice))
    if rows:
        raise AssertionError("checkpoint is not safe to load with weights_only=True:\n"
                             + tabulate(rows, headers=("file", "code", "key", "problem")))


def assert_compatible(report: Report, *, allow_missing: tuple[str, ...] = (),
                      allow_unexpected: tuple[str, ...] = (), allow_mismatch: tuple[str, ...] = ()) -> None:
    rows = []
    for fr in report.files:
        if fr.error is not None:
            rows.append((fr.path, "unreadable", "", fr.error))
            continue
        c = fr.compat
        if c is None:
            rows.append((fr.path, "no target", "", "pass model=... (or configure a target)"))
            continue
        rows += [(fr.path, "missing", k, "") for k in c["missing"] if not _matches(k, allow_missing)]
        rows += [(fr.path, "unexpected", k, "") for k in c["unexpected"] if not _matches(k, allow_unexpected)]
        rows += [(fr.path, "shape", k, f"checkpoint {a} vs model {b}")
                 for k, (a, b) in c["shape_mismatch"].items() if not _matches(k, allow_mismatch)]
        rows += [(fr.path, "not a tensor", k, v) for k, v in c["non_tensor"].items()]
    if rows:
        raise AssertionError("checkpoint does not load into the model:\n"
                             + tabulate(rows, headers=("file", "problem", "key", "detail")))
