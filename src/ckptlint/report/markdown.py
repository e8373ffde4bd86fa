"""A policy report to paste as a pull-request comment: summary table, findings per file, fixes."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from ..results import Report
from ..vocab import SEVERITIES


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, options: dict[str, Any]) -> str:
    out = ["## ckptlint report", ""]
    rows = []
    for fr in report.files:
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
        rows.append((status, f"`{_cell(fr.path)}`", _cell(fr.format or ""), wo, compat,
                     counts["error"], counts["warning"], counts["info"]))
    out.append(tabulate(rows, headers=("", "file", "format", "weights_only", "compat", "errors", "warnings",
                                       "info"), tablefmt="github"))
    for fr in report.files:
        if not fr.findings and fr.error is None:
            continue
        out += ["", f"### `{_cell(fr.path)}`", ""]
        if fr.error is not None:
            out.append(f"Unreadable: {_cell(fr.error)}")
            continue
        table = [(f.code, f.severity, f"`{_cell(f.key)}`" if f.key else "", _cell(f.message)) for f in fr.findings]
        out.append(tabulate(table, headers=("code", "severity", "key", "message"), tablefmt="github"))
        fixes = list(dict.fromkeys(f"- **{f.code}**: {_cell(f.fix)}" for f in fr.findings if f.fix))
        if fixes:
            out += ["", "**Fixes**", "", *fixes]
        snippet = fr.compat.fix.snippet if fr.compat and fr.compat.fix else None
        if snippet:
            out += ["", "<details><summary>Loading code that works for this checkpoint</summary>", "",
                    "```python", snippet.rstrip(), "```", "", "</details>"]
    n = len(report.files)
    errors = sum(1 for _, f in report.findings() if f.severity == "error")
    out += ["", f"{n} file{'s' if n != 1 else ''} checked, {errors} error{'s' if errors != 1 else ''}."]
    return "\n".join(out) + "\n"
