"""A policy report to paste as a pull-request comment: summary table, findings per file, fixes.

A GitHub comment holds at most 65,536 characters, so clean files are counted and listed in a
collapsed ``<details>`` block after everything that needs attention, and the report stops at
``max_chars`` (default :data:`MAX_CHARS`) with a line saying what was cut.
"""

from __future__ import annotations

import re
from typing import Any

from ..results import FileReport, Report
from ..vocab import SEVERITIES

GITHUB_COMMENT_LIMIT = 65_536
MAX_CHARS = 60_000
"""Default cap: GitHub's comment limit less room for what a workflow wraps around the report."""
_RESERVE = 1_000
"""Kept free below the cap for the closing tags and the line that says what was cut."""


def _cell(text: Any) -> str:
    """Prose from the file (messages, reasons) in a table cell: one line, no HTML, no column break."""
    flat = " ".join(str(text if text is not None else "").splitlines())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _code(text: str) -> str:
    """A code span that holds any text (keys and paths come from the file): a backtick fence longer
    than any run inside it, so neither a backtick nor ``</details>`` can end it early."""
    flat = " ".join(text.splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _row(cells: tuple[Any, ...]) -> str:
    """One table row, unpadded: padding every row to the widest is what made large reports huge."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(headers: tuple[str, ...]) -> list[str]:
    return [_row(headers), _row(tuple("---" for _ in headers))]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class _Writer:
    """Lines up to a character budget; once a line does not fit, everything after it is counted as cut."""

    def __init__(self, limit: int) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.limit = limit
        self.full = False

    def add(self, *lines: str) -> bool:
        """Add the lines together, or none of them (and stop adding) when they do not fit."""
        size = sum(len(line) + 1 for line in lines)
        if self.full or self.size + size > self.limit:
            self.full = True
            return False
        self.lines += lines
        self.size += size
        return True

    def force(self, *lines: str) -> None:
        """Lines that must close what was opened (``</details>``, the cut note): within the reserve."""
        self.lines += lines
        self.size += sum(len(line) + 1 for line in lines)


def _status(fr: FileReport) -> tuple[str, str, str]:
    """(status, weights_only, compat) cells."""
    counts = {s: sum(1 for f in fr.findings if f.severity == s) for s in SEVERITIES}
    if fr.error is not None:
        wo = "unreadable"
    elif fr.verdict is None:
        wo = ""
    else:
        wo = "✅ loads" if fr.verdict.loads else "❌ fails"
    compat = ""
    if fr.compat is not None:
        compat = "✅ strict" if fr.compat.strict_ok else "❌"
    status = "❌" if fr.error or counts["error"] else ("⚠️" if counts["warning"] else "✅")
    return status, wo, compat


def _is_clean(fr: FileReport) -> bool:
    return fr.error is None and not fr.findings


def _file_section(fr: FileReport) -> list[list[str]]:
    """A file's section as blocks: each block is added whole or not at all."""
    blocks = [["", f"### {_code(fr.path)}", ""]]
    if fr.error is not None:
        return blocks + [[f"Unreadable: {_cell(fr.error)}"]]
    blocks.append(_table(("code", "severity", "key", "message")))
    blocks += [[_row((f.code, f.severity, _code(f.key) if f.key else "", _cell(f.message)))]
               for f in fr.findings]
    fixes = list(dict.fromkeys(f"- **{f.code}**: {_cell(f.fix)}" for f in fr.findings if f.fix))
    if fixes:
        blocks += [["", "**Fixes**", ""], *([fix] for fix in fixes)]
    snippet = fr.compat.fix.snippet if fr.compat and fr.compat.fix else None
    if snippet:
        blocks.append(["", "<details><summary>Loading code that works for this checkpoint</summary>", "",
                       "```python", snippet.rstrip(), "```", "", "</details>"])
    return blocks


def render_markdown(report: Report, options: dict[str, Any]) -> str:
    limit = int(options.get("max_chars") or MAX_CHARS)
    out = _Writer(max(limit - _RESERVE, 0))
    files = list(report.files)
    attention = [fr for fr in files if not _is_clean(fr)]
    clean = [fr for fr in files if _is_clean(fr)]
    errors = sum(1 for _, f in report.findings() if f.severity == "error")
    summary = (f"{_plural(len(files), 'file')} checked: {_plural(len(attention), 'file')} with findings or "
               f"unreadable, {len(clean)} clean, {_plural(errors, 'error')}.")
    out.add("## ckptlint report", "", summary)
    rows_shown = 0
    if attention:
        out.add("", *_table(("", "file", "format", "weights_only", "compat", "errors", "warnings", "info")))
        for fr in attention:
            status, wo, compat = _status(fr)
            counts = [sum(1 for f in fr.findings if f.severity == s) for s in SEVERITIES]
            if not out.add(_row((status, _code(fr.path), _cell(fr.format or ""), wo, compat, *counts))):
                break
            rows_shown += 1
    sections_shown = findings_shown = 0
    for fr in attention:
        blocks = _file_section(fr)
        shown = [b for b in blocks if out.add(*b)]
        if len(shown) != len(blocks):
            if len(shown) > 1:
                sections_shown += 1  # cut part-way
            findings_shown += min(max(len(shown) - 2, 0), len(fr.findings))
            break
        sections_shown += 1
        findings_shown += len(fr.findings)
    clean_shown = 0
    if clean and out.add("", f"<details><summary>{_plural(len(clean), 'clean file')} (no findings)</summary>",
                         ""):
        for fr in clean:  # names only: clean means no finding, so each loads as its format allows
            if not out.add(f"- {_code(fr.path)}"):
                break
            clean_shown += 1
        out.force("", "</details>")
    skipped_shown = 0
    if report.skipped and out.add("", f"<details><summary>{_plural(len(report.skipped), 'file')} skipped "
                                      "(found in a folder, not checkpoints)</summary>", ""):
        for fr in report.skipped:
            if not out.add(f"- {_code(fr.path)}: {_cell(fr.error)}"):
                break
            skipped_shown += 1
        out.force("", "</details>")
    total_findings = sum(len(fr.findings) for fr in attention)
    if out.full:
        cut = [c for c in (
            f"{len(attention) - rows_shown} of the summary rows" if rows_shown < len(attention) else "",
            f"{total_findings - findings_shown} of {total_findings} findings" if findings_shown < total_findings
            else "",
            _plural(len(attention) - sections_shown, "file section") if sections_shown < len(attention) else "",
            f"{len(clean) - clean_shown} clean file names" if clean_shown < len(clean) else "",
            f"{len(report.skipped) - skipped_shown} skipped file names"
            if skipped_shown < len(report.skipped) else "",
        ) if c]
        out.force("", f"**Cut at {limit:,} characters** (a GitHub comment holds {GITHUB_COMMENT_LIMIT:,}): "
                      f"{'; '.join(cut) or 'the end of the report'} not shown. "
                      "`ckptlint check --format json` (or `sarif`) has everything.")
    return "\n".join(out.lines) + "\n"
