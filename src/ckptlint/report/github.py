"""GitHub Actions workflow commands: one annotation per finding.

GitHub shows at most 10 error and 10 warning annotations per step, so the CLI
also appends the markdown report to ``$GITHUB_STEP_SUMMARY`` when it is set.
Escaping follows the runner's parser (actions/runner ``ActionCommand.TryParseV2``):
properties are split at ``,`` and end at the first ``::``, so property values
escape ``%``, CR, LF, ``:`` and ``,``; the message escapes ``%``, CR and LF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..results import Report
from ..vocab import Severity
from .sarif import is_pseudo, source_root, unique_files

COMMANDS: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_path(path: str, root: Path) -> str:
    """The path as the runner wants it: relative to the repository root (``/``-separated), which is
    where annotations are shown whatever folder ckptlint ran in; a file outside it stays absolute."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, root)
    if rel == ".." or rel.startswith(".." + os.sep):
        return full
    return Path(rel).as_posix()


def render_github(report: Report, options: dict[str, Any]) -> str:
    rules = options.get("rules") or {}
    root = source_root(options.get("source_root"))
    lines = []
    for fr, _ in unique_files(report, root):
        # stdin or bytes: no file to annotate, so a plain annotation (the name is in the title)
        where = "" if is_pseudo(fr.path) else f"file={escape_property(annotation_path(fr.path, root))},line=1,"
        for f in fr.findings:
            name = rules[f.code].name if f.code in rules else f.code
            title = (f"{fr.path}: " if not where else "") + f"{f.code} {name}" + (f" [{f.key}]" if f.key else "")
            message = f.message + (f"\nFix: {f.fix}" if f.fix else "")
            lines.append(f"::{COMMANDS.get(f.severity, 'warning')} {where}"
                         f"title={escape_property(title)}::{escape_data(message)}")
    return "\n".join(lines)
