"""Text output of ``ckptlint check``: per file a verdict line, a findings table, the fixes."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from ..results import FileReport, Report
from ..vocab import SEVERITIES

COLORS: dict[str, str] = {"error": "31", "warning": "33", "info": "36"}  # by Severity


def _paint(text: str, severity: str, color: bool) -> str:
    return f"\x1b[{COLORS[severity]}m{text}\x1b[0m" if color and severity in COLORS else text


def render_file(fr: FileReport, color: bool = False) -> str:
    lines: list[str] = []
    if fr.error is not None:
        return f"{fr.path}: unreadable: {fr.error}"
    wo = fr.verdict
    status = "loads with weights_only=True" if wo and wo.loads else "weights_only=True FAILS"
    lines.append(f"{fr.path} [{fr.format}] — {status}")
    if not fr.findings:
        lines.append("  no findings")
        return "\n".join(lines)
    rows = [(f.code, f.severity, f.location or "", f.key or "", f.message) for f in fr.findings]
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
        lines.extend(f"    {'/'.join(codes)}: {fix}" for fix, codes in fixes.items())
    lines.extend(f"  note: {note}" for note in (fr.compat.notes if fr.compat else ()))
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


def render_report(report: Report, color: bool = False) -> str:
    parts = [render_file(fr, color) for fr in report.files if fr.error is None]
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for fr in report.files:
        for f in fr.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
    n = len(report.files)
    def plural(k: int, word: str) -> str:
        return f"{k} {word}{'s' if k != 1 else ''}"

    summary = (f"{plural(n, 'file')} checked: {plural(counts['error'], 'error')}, "
               f"{plural(counts['warning'], 'warning')}, {len(report.unreadable)} unreadable")
    return "\n\n".join(parts + [summary])
