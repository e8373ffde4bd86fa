"""Output of ``ckptlint rules``: the list of rules, or one rule's page (text or JSON).

The page lookup lives here, below the plugin manager, because reporters (SARIF's ``help``)
need it too and must not import the manager.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources

from tabulate import tabulate

from ..rule import Rule
from ..vocab import SEVERITIES, Severity


def shipped_page(code: str) -> str | None:
    """The page ckptlint ships for ``code`` (package data ``ckptlint/rules/docs/CODE.md``), or None."""
    if not re.fullmatch(r"[A-Z]{1,3}[0-9]{3}|index", code):
        return None
    try:
        page = resources.files("ckptlint").joinpath("rules").joinpath("docs").joinpath(f"{code}.md")
        return page.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError, ModuleNotFoundError):
        return None


def rule_page(rule: Rule) -> str:
    """A rule's page: its own ``doc``, else the page shipped in ckptlint/rules/docs, else one made of its summary."""
    if rule.doc:
        return rule.doc
    return shipped_page(rule.code) or (
        f"# {rule.code} {rule.name}\n\nDefault severity: **{rule.severity}**.\n\n{rule.summary}.\n")


def rule_from_page(code: str, fallback: Severity) -> Rule | None:
    """The built-in rule ``code`` as ckptlint's shipped pages describe it (name, severity and summary from
    the index table, the page as its doc): for a report holding a code the caller passed no rule for."""
    page = shipped_page(code)
    index = shipped_page("index") if page is not None else None
    row = re.search(rf"^\| \[{code}\]\({code}\.md\) \| (?P<name>[a-z0-9-]+) \| (?P<severity>\w+) \| "
                    r"(?P<summary>.+?) \|\s*$", index or "", re.MULTILINE)
    if page is None or row is None:
        return None
    severity: Severity = next((s for s in SEVERITIES if s == row["severity"]), fallback)
    return Rule(code, row["name"], severity, row["summary"], page)


def what_it_does(page: str) -> str:
    """The first paragraph under ``## What it does``, else the page's first paragraph of prose (one line),
    else ``""``."""
    m = re.search(r"^## What it does\s*\n+(?P<para>.+?)(?:\n\s*\n|\Z)", page, re.MULTILINE | re.DOTALL)
    if m:
        return " ".join(m["para"].split())
    for para in re.split(r"\n\s*\n", page):
        text = para.strip()
        if text and not text.startswith(("#", "Default severity:", "```")):
            return " ".join(text.split())
    return ""


def render_rules(rules: Sequence[Rule], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "summary": r.summary,
                            "plugin": r.plugin} for r in rules], indent=2)
    table: str = tabulate([(r.code, r.name, r.severity, r.summary) for r in rules],
                          headers=("code", "name", "severity", "summary"), tablefmt="simple")
    return table


def render_rule(rule: Rule, doc: str, fmt: str = "text") -> str:
    """``doc`` is the rule's page (:func:`rule_page`)."""
    if fmt == "json":
        return json.dumps({"code": rule.code, "name": rule.name, "severity": rule.severity,
                           "summary": rule.summary, "plugin": rule.plugin, "doc": doc}, indent=2)
    return doc
