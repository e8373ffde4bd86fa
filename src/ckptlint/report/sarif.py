"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Checkpoints are binary, so results point at the file (``region.startLine`` 1,
which code scanning requires to show a result) and carry the key path as a
logical location; ``partialFingerprints`` is a stable hash of rule, path and key
so that alerts track across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any
from urllib.parse import quote

from ..results import Report
from ..rule import Rule
from ..version import __version__
from ..vocab import Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "note"}
INFO_URI = "https://github.com/ckptlint/ckptlint"


def artifact_uri(path: str) -> str:
    """Repository-relative (to the working directory) when possible, else a file URI."""
    rel = os.path.relpath(os.path.abspath(path))
    if rel.startswith(".."):
        return "file://" + quote(os.path.abspath(path).replace(os.sep, "/"))
    return quote(rel.replace(os.sep, "/"))


def _rule(rule: Rule) -> dict[str, Any]:
    help_text = f"{rule.summary}. See `ckptlint rules {rule.code}`."
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.summary},
        "help": {"text": help_text, "markdown": rule.doc or help_text},
        "helpUri": f"{INFO_URI}/blob/main/docs/rules/{rule.code}.md",
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": [rule.category]},
    }


def render_sarif(report: Report, options: dict[str, Any]) -> str:
    rules: dict[str, Rule] = options["rules"]
    used = sorted({f.code for _, f in report.findings()})
    # every code in a checked report is declared (the plugin manager rejects others); a report
    # assembled by hand may still hold one: its entry then carries the finding's own severity
    severity = {f.code: f.severity for _, f in reversed(report.findings())}
    declared = [rules[c] if c in rules else Rule(c, c, severity[c], c) for c in used]
    index = {r.code: i for i, r in enumerate(declared)}
    results = []
    for path, f in report.findings():
        uri = artifact_uri(path)
        text = f.message + (f"\nFix: {f.fix}" if f.fix else "")
        location: dict[str, Any] = {
            "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}},
        }
        if f.key:
            location["logicalLocations"] = [{"fullyQualifiedName": f.key, "kind": "member"}]
        fingerprint = hashlib.sha256(f"{f.code}\0{uri}\0{f.key or ''}".encode()).hexdigest()[:32]
        results.append({
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": LEVELS.get(f.severity, "warning"),
            "message": {"text": text},
            "locations": [location],
            "partialFingerprints": {"primaryLocationLineHash": fingerprint},
            "properties": {k: v for k, v in (("key", f.key), ("location", f.location)) if v},
        })
    notifications = [{"level": "error", "message": {"text": f"{fr.path}: {fr.error}"},
                      "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(fr.path)}}}]}
                     for fr in report.unreadable]
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ckptlint", "version": __version__,
                                "semanticVersion": __version__.split(".dev")[0], "informationUri": INFO_URI,
                                "rules": [_rule(r) for r in declared]}},
            "artifacts": [{"location": {"uri": artifact_uri(fr.path)}, **({"length": fr.inventory.facts.file_size}
                                                                           if fr.inventory else {})}
                          for fr in report.files],
            "results": results,
            "invocations": [{"executionSuccessful": not report.unreadable,
                             "toolExecutionNotifications": notifications}],
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(log, indent=2)
