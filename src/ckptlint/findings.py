"""Findings: what rules report. Plain data; policy (severity, selection) lives in rules and config.

Rules make findings through their :class:`~ckptlint.rule.Rule` (``RULE.finding(message, key=...)``),
so the code and default severity are written once, in the rule's declaration.
"""

from __future__ import annotations

from .record import record
from .vocab import SEVERITIES, Severity, severity_rank

__all__ = ["SEVERITIES", "Finding", "severity_rank"]


@record(kw_only=True)
class Finding:
    """One problem a rule found in one file, with its code, severity and fix."""

    code: str
    severity: Severity
    message: str
    key: str | None = None
    """Where the object sits inside the checkpoint (key path joined with ``/``)."""
    location: str | None = None
    """Where in the file: ``zip-member@offset``, ``pickle#3@120`` …"""
    fix: str | None = None
