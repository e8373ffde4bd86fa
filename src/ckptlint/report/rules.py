"""Output of ``ckptlint rules``: the list of rules, or one rule's page (text or JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tabulate import tabulate

from ..rule import Rule


def render_rules(rules: Sequence[Rule], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "summary": r.summary,
                            "plugin": r.plugin} for r in rules], indent=2)
    table: str = tabulate([(r.code, r.name, r.severity, r.summary) for r in rules],
                          headers=("code", "name", "severity", "summary"), tablefmt="simple")
    return table


def render_rule(rule: Rule, doc: str, fmt: str = "text") -> str:
    """``doc`` is the rule's page (``plugin.manager.rule_doc``)."""
    if fmt == "json":
        return json.dumps({"code": rule.code, "name": rule.name, "severity": rule.severity,
                           "summary": rule.summary, "plugin": rule.plugin, "doc": doc}, indent=2)
    return doc
