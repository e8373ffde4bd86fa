"""Findings: what rules report. Plain data; policy (severity, selection) lives in rules and config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    key: str | None = None
    """Where the object sits inside the checkpoint (key path joined with ``/``)."""
    location: str | None = None
    """Where in the file: ``zip-member@offset``, ``pickle#3@120`` …"""
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "key": self.key, "location": self.location, "fix": self.fix}


def severity_rank(severity: str) -> int:
    """Higher is worse: error 2, warning 1, info 0."""
    return {"error": 2, "warning": 1, "info": 0}.get(severity, 0)
