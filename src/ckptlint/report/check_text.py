"""Text output of ``ckptlint check``: per file a verdict line, a findings table, the fixes; and the
``concise`` format, one line per finding.

Every string that can come from a checked file (keys, paths, messages quoting names) goes through
:func:`~ckptlint.report.inventory_text.clean`, as ``inspect`` does: an escape sequence or a newline
in a key must not colour the terminal or forge a table row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..results import FileReport, Report
from ..vocab import SEVERITIES
from .inventory_text import clean

COLORS: dict[str, str] = {"error": "31", "warning": "33", "info": "36"}  # by Severity


def _paint(text: str, severity: str, color: bool) -> str:
    return f"\x1b[{COLORS[severity]}m{text}\x1b[0m" if color and severity in COLORS else text


def _clean(value: str | None) -> str:
    return clean(value) if value else ""


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``, ``0 files``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_file(fr: FileReport, color: bool = False) -> str:
    lines: list[str] = []
    if fr.error is not None:
        return f"{clean(fr.path)}: unreadable: {clean(fr.error)}"
    wo = fr.verdict
    status = "loads with weights_only=True" if wo and wo.loads else "weights_only=True FAILS"
    lines.append(f"{clean(fr.path)} [{fr.format}] — {status}")
    if not fr.findings:
        lines.append("  no findings")
        return "\n".join(lines)
    from tabulate import tabulate  # only a file with findings has a table (its import costs ~30 ms of start-up)

    rows = [(f.code, f.severity, _clean(f.location), _clean(f.key), clean(f.message))
            for f in fr.findings]
    table = tabulate(rows, headers=("code", "severity", "location", "key", "message"),
                     tablefmt="simple", maxcolwidths=[None, None, 28, 28, 70])
    if color:  # after layout, so escape codes do not disturb the column widths
        body = table.splitlines()
        table = "\n".join(body[:2] + [_paint(line, rows[i][1], True) if i < len(rows) else line
                                       for i, line in enumerate(_row_lines(body[2:], rows))])
    lines.extend("  " + line for line in table.splitlines())
    fixes: dict[str, list[str]] = {}
    for f in fr.findings:
        if f.fix and f.code not in fixes.setdefault(f.fix, []):
            fixes[f.fix].append(f.code)
    if fixes:
        lines.append("  fix:")
        lines.extend(f"    {'/'.join(codes)}: {clean(fix)}" for fix, codes in fixes.items())
    lines.extend(f"  note: {clean(note)}" for note in (fr.compat.notes if fr.compat else ()))
    snippet = fr.compat.fix.snippet if fr.compat and fr.compat.fix else None
    if snippet:
        lines.append("  loading code that works for this checkpoint and model:")
        lines.extend("    " + line if line else "" for line in snippet.splitlines())
    return "\n".join(lines)


def _row_lines(lines: list[str], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Group wrapped table lines by row (a row starts where its code appears), one string per row."""
    out: list[str] = []
    codes = {r[0] for r in rows}
    for line in lines:
        if out and line.split(" ", 1)[0] not in codes:
            out[-1] += "\n" + line
        else:
            out.append(line)
    return out


def summary_line(report: Report) -> str:
    """``3 files checked: 1 error, 2 warnings, 1 unreadable``. An unreadable file counts once, as
    unreadable: its CK901/CK902 finding is not counted again as an error."""
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for fr in report.files:
        if fr.error is None:
            for f in fr.findings:
                counts[f.severity] = counts.get(f.severity, 0) + 1
    return (f"{plural(len(report.files), 'file')} checked: {plural(counts['error'], 'error')}, "
            f"{plural(counts['warning'], 'warning')}, {len(report.unreadable)} unreadable")


def render_report(report: Report, color: bool = False, quiet: int = 0) -> str:
    """Every readable file's block, then the summary line; ``quiet`` >= 1 leaves out files without findings
    (1,000 clean files print one line, not 3,001)."""
    parts = [render_file(fr, color) for fr in report.files
             if fr.error is None and (fr.findings or quiet < 1)]
    return "\n\n".join(parts + [summary_line(report)])


def concise_line(path: str, code: str, message: str, location: str | None = None) -> str:
    """``path:LOCATION: CODE message`` (flake8's and ruff's concise shape; no location, no middle part)."""
    where = f"{clean(path)}:{clean(location)}" if location else clean(path)
    return f"{where}: {code} {clean(message)}"


def render_concise(report: Report, color: bool = False) -> str:
    """One line per finding (unreadable files' CK901/CK902 included), then the summary line."""
    lines = [concise_line(fr.path, _paint(f.code, f.severity, color), f.message, f.location)
             for fr in report.files for f in fr.findings]
    return "\n".join([*lines, summary_line(report)])


def render(report: Report, options: Mapping[str, Any]) -> str:
    """The ``text`` format with the reporter options (``color``, ``quiet``)."""
    return render_report(report, color=bool(options.get("color")), quiet=int(options.get("quiet") or 0))


def render_concise_format(report: Report, options: Mapping[str, Any]) -> str:
    """The ``concise`` format with the reporter options (``color``)."""
    return render_concise(report, color=bool(options.get("color")))
