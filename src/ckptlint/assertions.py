"""Assertion helpers for hand-written tests: failures show what differs, as a table.

``Report.assert_safe()`` and ``Report.assert_compatible(...)`` call these. They raise
``AssertionError`` themselves (no bare ``assert``), so the message is the same with or
without pytest's assertion rewriting.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

if TYPE_CHECKING:
    from .checker import FileReport, Report

_MAX_ROWS = 60


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(key, p) for p in patterns)


def _table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    shown = rows[:_MAX_ROWS]
    text = tabulate(shown, headers=headers, maxcolwidths=[None, None, 40, 70][: len(headers)])
    if len(rows) > len(shown):
        text += f"\n… and {len(rows) - len(shown)} more rows"
    return text


def assert_safe(report: Report) -> None:
    """Fail unless every file is readable, has no error-level safety finding (CK1xx) and loads
    with ``torch.load(weights_only=True)`` (given the trusted globals)."""
    rows: list[tuple[str, ...]] = []
    fixes: dict[str, str] = {}
    for fr in report.files:
        if fr.error is not None:
            rows.append((fr.path, "unreadable", "", fr.error))
            continue
        for f in fr.findings:
            if f.code.startswith("CK1") and f.severity == "error":
                rows.append((fr.path, f.code, f.key or "", f.message))
                if f.fix:
                    fixes.setdefault(f.code, f.fix)
        if fr.verdict is not None and not fr.verdict.loads:
            rows.append((fr.path, "weights_only", "", fr.verdict.advice))
    if rows:
        text = "checkpoint is not safe to load with weights_only=True:\n" + _table(
            rows, ("file", "code", "key", "problem"))
        if fixes:
            text += "\nfix:\n" + "\n".join(f"  {code}: {fix}" for code, fix in fixes.items())
        raise AssertionError(text)


def _config_allows(fr: FileReport) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The allow patterns of the ``[tool.ckptlint]`` target that matches the file, if any."""
    try:
        from .config import config_for

        entry = config_for(fr.path).target_for(fr.path)
    except Exception:  # noqa: BLE001 - a broken config is reported by check() itself
        return (), (), ()
    if entry is None:
        return (), (), ()
    return entry.allow_missing, entry.allow_unexpected, entry.allow_mismatch


def _compat_rows(fr: FileReport, allow_missing: tuple[str, ...], allow_unexpected: tuple[str, ...],
                 allow_mismatch: tuple[str, ...]) -> list[tuple[str, ...]]:
    if fr.error is not None:
        return [(fr.path, "unreadable", "", fr.error)]
    c: dict[str, Any] | None = fr.compat
    if c is None:
        no_sd = [f for f in fr.findings if f.code == "CK209"]
        if no_sd:
            return [(fr.path, "no state_dict", "", no_sd[0].message)]
        return [(fr.path, "no target", "", "pass model=... or snapshot=... (or configure a target)")]
    cfg_missing, cfg_unexpected, cfg_mismatch = _config_allows(fr)
    allow_missing += cfg_missing
    allow_unexpected += cfg_unexpected
    allow_mismatch += cfg_mismatch
    rows: list[tuple[str, ...]] = []
    rows += [(fr.path, "missing", k, "the model expects it; the checkpoint lacks it")
             for k in c["missing"] if not _matches(k, allow_missing)]
    rows += [(fr.path, "unexpected", k, "in the checkpoint; the model has no such key")
             for k in c["unexpected"] if not _matches(k, allow_unexpected)]
    rows += [(fr.path, "shape", k, f"checkpoint {a} vs model {b}")
             for k, (a, b) in c["shape_mismatch"].items() if not _matches(k, allow_mismatch)]
    rows += [(fr.path, "not a tensor", k, str(v)) for k, v in c["non_tensor"].items()]
    return rows


def assert_compatible(report: Report, *, allow_missing: tuple[str, ...] = (),
                      allow_unexpected: tuple[str, ...] = (), allow_mismatch: tuple[str, ...] = ()) -> None:
    """Fail unless each file's state_dict loads into its target with ``load_state_dict(strict=True)``,
    apart from keys matching the ``allow_*`` fnmatch patterns (and those of the matching
    ``[tool.ckptlint]`` target). The message lists every difference and the suggested fix."""
    rows: list[tuple[str, ...]] = []
    fixes: list[str] = []
    for fr in report.files:
        file_rows = _compat_rows(fr, tuple(allow_missing), tuple(allow_unexpected), tuple(allow_mismatch))
        rows += file_rows
        if file_rows:
            fixes += [f"  {fr.path}: {f.code}: {f.fix}" for f in fr.findings
                      if f.code.startswith("CK2") and f.fix and f.severity == "error"][:1]
    if rows:
        targets = sorted({str((fr.compat or {}).get("target")) for fr in report.files if fr.compat})
        into = f"into {', '.join(targets)}" if targets else "into the model"
        text = f"checkpoint does not load {into}:\n" + _table(rows, ("file", "problem", "key", "detail"))
        if fixes:
            text += "\nfix:\n" + "\n".join(fixes)
        raise AssertionError(text)
