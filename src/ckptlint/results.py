"""The result model: what ``check`` returns, typed all the way to the reporters.

Frozen dataclasses owned by the data layer, so renderers, assertions and the
pytest plugin depend on the model and never on the engine (``checker.py``).
Only the JSON reporter (``report/check_json.py``) turns them into dicts: the
JSON contract (docs/report-json.md) lives there, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .filenames import fnmatchcase
from .findings import Finding
from .inventory import Inventory
from .record import field, record
from .vocab import BlockerKind, Category, FormatKind, Severity, severity_rank

if TYPE_CHECKING:  # defined in compat_report.py, imported on first use: only a check with a target makes them
    from .compat_report import CompatFix, CompatReport


@record
class Blocker:
    """One reason ``torch.load(weights_only=True)`` refuses the file."""

    kind: BlockerKind
    detail: str
    stream: str = ""
    offset: int | None = None
    category: Category | None = None
    """For globals and classes: allowed/data/model/dangerous/unknown."""
    cls: str | None = None
    """For structure blockers: the class that must be allowlisted."""


@record
class Verdict:
    """What ``torch.load(path, weights_only=True)`` will do: every blocker, in the order torch meets them."""

    loads: bool
    blocking: tuple[Blocker, ...]
    torch_version: str
    advice: str
    """One line: what to do (the allowlist line, re-save, or do not load)."""
    categories: Mapping[str, Category] = field(default_factory=dict)
    """Every referenced global's category, by qualname."""


@record
class FileReport:
    """One checked file: its findings after selection and severity policy, and the analyses behind them."""

    path: str
    format: FormatKind | None
    error: str | None = None
    """Why the file could not be read (then ``findings`` holds one CK901/CK902)."""
    findings: Sequence[Finding] = ()
    verdict: Verdict | None = None
    inventory: Inventory | None = None
    compat: CompatReport | None = None


@record
class Report:
    """What ``ckptlint.check`` returns."""

    files: Sequence[FileReport]
    skipped: Sequence[FileReport] = ()
    """Files a folder walk found that are plainly not checkpoints (``error`` says what they are): left out
    of ``files``, the findings and the exit code; the command line prints one note line for each."""

    def worst(self) -> int:
        """Highest severity rank among findings, -1 when clean."""
        return max((severity_rank(f.severity) for fr in self.files for f in fr.findings), default=-1)

    @property
    def unreadable(self) -> list[FileReport]:
        return [f for f in self.files if f.error is not None]

    def findings(self) -> list[tuple[str, Finding]]:
        """Every (path, finding) pair, in file order."""
        return [(fr.path, f) for fr in self.files for f in fr.findings]

    def exit_code(self, fail_on: Severity | str = "error") -> int:
        """0 clean, 1 findings at or above ``fail_on``, 2 unreadable input."""
        if self.unreadable:
            return 2
        return 1 if self.worst() >= severity_rank(fail_on) else 0

    def assert_safe(self) -> None:
        """Raise AssertionError, with the findings as a table, unless every file is readable, has no
        error-level safety finding (CK1xx) and loads with ``torch.load(weights_only=True)``."""
        __tracebackhide__ = True  # pytest shows the test's line and this table, not ckptlint's frame
        from .assertions import table

        rows: list[tuple[str, ...]] = []
        fixes: dict[str, str] = {}
        for fr in self.files:
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
            text = "checkpoint is not safe to load with weights_only=True:\n" + table(
                rows, ("file", "code", "key", "problem"))
            if fixes:
                text += "\nfix:\n" + "\n".join(f"  {code}: {fix}" for code, fix in fixes.items())
            raise AssertionError(text)

    def assert_compatible(self, *, allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                          allow_mismatch: Iterable[str] = ()) -> None:
        """Raise AssertionError, with what differs as a table, unless each file's state_dict loads into
        its target with ``load_state_dict(strict=True)``, apart from keys matching the ``allow_*`` fnmatch
        patterns (and those of the matching ``[tool.ckptlint]`` target)."""
        __tracebackhide__ = True  # pytest shows the test's line and this table, not ckptlint's frame
        from .assertions import table

        allows = (tuple(allow_missing), tuple(allow_unexpected), tuple(allow_mismatch))
        rows: list[tuple[str, ...]] = []
        fixes: list[str] = []
        for fr in self.files:
            file_rows = _compat_rows(fr, *allows)
            rows += file_rows
            if file_rows:
                fixes += [f"  {fr.path}: {f.code}: {f.fix}" for f in fr.findings
                          if f.code.startswith("CK2") and f.fix and f.severity == "error"][:1]
        if rows:
            targets = sorted({fr.compat.target for fr in self.files if fr.compat})
            into = f"into {', '.join(targets)}" if targets else "into the model"
            text = f"checkpoint does not load {into}:\n" + table(rows, ("file", "problem", "key", "detail"))
            if fixes:
                text += "\nfix:\n" + "\n".join(fixes)
            raise AssertionError(text)


def _compat_rows(fr: FileReport, allow_missing: tuple[str, ...], allow_unexpected: tuple[str, ...],
                 allow_mismatch: tuple[str, ...]) -> list[tuple[str, ...]]:
    if fr.error is not None:
        return [(fr.path, "unreadable", "", fr.error)]
    c = fr.compat
    if c is None:
        no_sd = [f for f in fr.findings if f.code == "CK209"]
        if no_sd:
            return [(fr.path, "no state_dict", "", no_sd[0].message)]
        return [(fr.path, "no target", "", "pass model=... or snapshot=... (or configure a target)")]
    from .assertions import config_allows

    cfg_missing, cfg_unexpected, cfg_mismatch = config_allows(fr.path)
    allow_missing += cfg_missing
    allow_unexpected += cfg_unexpected
    allow_mismatch += cfg_mismatch
    rows: list[tuple[str, ...]] = []
    rows += [(fr.path, "missing", k, "the model expects it; the checkpoint lacks it")
             for k in c.missing if not matches(k, allow_missing)]
    rows += [(fr.path, "unexpected", k, "in the checkpoint; the model has no such key")
             for k in c.unexpected if not matches(k, allow_unexpected)]
    rows += [(fr.path, "shape", k, f"checkpoint {list(a)} vs model {list(b)}")
             for k, (a, b) in c.shape_mismatch.items() if not matches(k, allow_mismatch)]
    rows += [(fr.path, "not a tensor", k, str(v)) for k, v in c.non_tensor.items()]
    return rows


def matches(key: str, patterns: Iterable[str]) -> bool:
    """``key`` matches one of the fnmatch ``patterns`` (case-sensitive, as allow-* are)."""
    return any(fnmatchcase(key, p) for p in patterns)


def __getattr__(name: str) -> Any:
    """``CompatFix`` and ``CompatReport`` (ckptlint.compat_report), imported on first use (startup)."""
    if name in ("CompatFix", "CompatReport"):
        from . import compat_report

        return getattr(compat_report, name)
    raise AttributeError(f"module 'ckptlint.results' has no attribute {name!r}")


__all__ = ["Blocker", "CompatFix", "CompatReport", "FileReport", "Report", "Verdict", "matches"]
