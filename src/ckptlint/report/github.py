"""GitHub Actions workflow commands: one annotation per finding.

GitHub shows at most 10 error and 10 warning annotations per step, so the CLI
also appends the markdown report to ``$GITHUB_STEP_SUMMARY`` when it is set.
"""

from __future__ import annotations

from typing import Any

from ..results import Report
from ..vocab import Severity

COMMANDS: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, options: dict[str, Any]) -> str:
    rules = options.get("rules", {})
    lines = []
    for path, f in report.findings():
        name = rules[f.code].name if f.code in rules else f.code
        title = f"{f.code} {name}" + (f" [{f.key}]" if f.key else "")
        message = f.message + (f"\nFix: {f.fix}" if f.fix else "")
        lines.append(f"::{COMMANDS.get(f.severity, 'warning')} file={escape_property(path)},line=1,"
                     f"title={escape_property(title)}::{escape_data(message)}")
    return "\n".join(lines)
