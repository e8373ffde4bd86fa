"""``ckptlint.check()``: run the analyses on files and collect findings into a report."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError, CkptlintError
from .findings import Finding, severity_rank
from .inventory import Inventory
from .limits import DEFAULT_LIMITS, Limits
from .safety.weights_only import Verdict
from .targets.resolve import Target


@dataclass
class FileReport:
    path: str
    format: str | None
    error: str | None = None
    findings: list[Finding] = field(default_factory=list)
    verdict: Verdict | None = None
    inventory: Inventory | None = None
    compat: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """One entry of the JSON report (contract version 1, ../docs/report-json.md)."""
        cats = self.verdict.categories if self.verdict else {}
        globals_ = []
        if self.inventory is not None:
            seen = set()
            for g in self.inventory.globals:
                if g.qualname not in seen:
                    seen.add(g.qualname)
                    globals_.append({"module": g.module, "name": g.name, "category": cats.get(g.qualname),
                                     "stream": g.stream, "offset": g.offset})
        return {
            "path": self.path,
            "format": self.format,
            "error": self.error,
            "findings": [f.to_dict() for f in self.findings],
            "globals": globals_,
            "weights_only": None if self.verdict is None else self.verdict.to_dict(),
            "compat": self.compat,
        }


@dataclass
class Report:
    files: list[FileReport]

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "files": [f.to_dict() for f in self.files]}

    def worst(self) -> int:
        """Highest severity rank among findings, -1 when clean."""
        return max((severity_rank(f.severity) for fr in self.files for f in fr.findings), default=-1)

    @property
    def unreadable(self) -> list[FileReport]:
        return [f for f in self.files if f.error is not None]

    def assert_safe(self) -> None:
        """Raise AssertionError, with the findings as a table, unless every file is safe to load."""
        from .assertions import assert_safe

        assert_safe(self)

    def assert_compatible(self, *, allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                          allow_mismatch: Iterable[str] = ()) -> None:
        """Raise AssertionError, with what differs as a table, unless the files load into the target.

        ``allow_*`` are fnmatch patterns of keys whose difference is accepted."""
        from .assertions import assert_compatible

        assert_compatible(self, allow_missing=tuple(allow_missing), allow_unexpected=tuple(allow_unexpected),
                          allow_mismatch=tuple(allow_mismatch))

    def exit_code(self, fail_on: str = "error") -> int:
        """0 clean, 1 findings at or above ``fail_on``, 2 unreadable input."""
        if self.unreadable:
            return 2
        return 1 if self.worst() >= severity_rank(fail_on) else 0


def check_file(path: str | os.PathLike[str], *, trusted: Iterable[str] = (),
               limits: Limits = DEFAULT_LIMITS, target: Target | None = None) -> FileReport:
    """Safety, device and (with a target) compatibility analysis of one file.

    Unreadable input becomes ``error``, never an exception."""
    from . import inspect
    from .rules.device import device_findings
    from .rules.safety import safety_findings
    from .safety.allowlist import allowed_globals, installed_torch_version
    from .safety.weights_only import predict

    path = os.fspath(path)
    trusted_set = frozenset(trusted)
    try:
        inv = inspect(path, limits=limits)
    except CheckpointError as e:
        return FileReport(path, e.format, e.reason)
    except CkptlintError as e:
        return FileReport(path, None, str(e))
    allowed = allowed_globals()
    verdict = predict(inv, allowed | trusted_set, installed_torch_version())
    findings = safety_findings(inv, verdict, trusted_set) + device_findings(inv)
    report = FileReport(path, inv.format, None, findings, verdict, inv)
    if target is not None:
        _add_compat(report, inv, target)
    return report


def _add_compat(report: FileReport, inv: Inventory, target: Target) -> None:
    from .compat.analyze import analyze
    from .compat.unwrap import UnwrapError
    from .rules.compat import compat_findings

    try:
        rep = analyze(inv, target.signature, model=target.model, key=target.key)
    except UnwrapError as e:
        report.findings.append(Finding("CK209", "error", f"no state_dict for {target.name}: {e}", None, None,
                                       "name it with --key (e.g. --key state_dict)"))
        return
    report.compat = rep.to_dict()
    report.findings.extend(compat_findings(rep, target))


def check(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
          trusted: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS,
          config: str | None = None, use_config: bool = True, target: Target | None = None,
          model: Any = None, model_kwargs: Any = None, snapshot: str | None = None,
          key: str | None = None) -> Report:
    """Check one or more checkpoint files; see :class:`Report`.

    Each file's configuration is the nearest ``[tool.ckptlint]`` above it (or ``config``);
    its ``trusted-globals`` join ``trusted``. Raises ConfigError for an unusable config.
    """
    from .config import Config, config_for

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for p in paths:
        cfg = config_for(os.fspath(p), config) if use_config else Config()
        t = target if target is not None else _target_for(os.fspath(p), cfg, model, model_kwargs, snapshot, key)
        files.append(check_file(p, trusted=(*trusted, *cfg.trusted_globals), limits=limits, target=t))
    return Report(files)


def _target_for(path: str, cfg: Any, model: Any, model_kwargs: Any, snapshot: str | None,
                key: str | None) -> Target | None:
    """Explicit options win; otherwise the first configured target whose glob matches the file."""
    from .compat.unwrap import parse_key
    from .targets.resolve import resolve_target

    if model is not None or snapshot is not None:
        return resolve_target(model=model, model_kwargs=model_kwargs, snapshot=snapshot,
                              key=parse_key(key) if key else None)
    entry = cfg.target_for(path) if cfg is not None else None
    if entry is None:
        return None
    return resolve_target(model=entry.model, model_kwargs=entry.model_kwargs, snapshot=entry.snapshot,
                          key=parse_key(entry.key) if entry.key else None,
                          allow_missing=entry.allow_missing, allow_unexpected=entry.allow_unexpected,
                          allow_mismatch=entry.allow_mismatch)
