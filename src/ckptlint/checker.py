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

    def exit_code(self, fail_on: str = "error") -> int:
        """0 clean, 1 findings at or above ``fail_on``, 2 unreadable input."""
        if self.unreadable:
            return 2
        return 1 if self.worst() >= severity_rank(fail_on) else 0


def check_file(path: str | os.PathLike[str], *, trusted: Iterable[str] = (),
               limits: Limits = DEFAULT_LIMITS) -> FileReport:
    """Safety analysis of one file; unreadable input becomes ``error``, never an exception."""
    from . import inspect
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
    findings = safety_findings(inv, verdict, trusted_set)
    return FileReport(path, inv.format, None, findings, verdict, inv)


def check(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
          trusted: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS,
          config: str | None = None, use_config: bool = True) -> Report:
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
        files.append(check_file(p, trusted=(*trusted, *cfg.trusted_globals), limits=limits))
    return Report(files)
