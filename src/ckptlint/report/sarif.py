"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Checkpoints are binary, so results point at the file (``region.startLine`` 1,
which code scanning requires to show a result) and carry the key path as a
logical location; ``partialFingerprints`` is a stable hash of rule, path and key
so that alerts track across runs. Paths are relative to the repository root
(``%SRCROOT%``), as code scanning matches them against the checkout, not to
wherever ckptlint happened to run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..filenames import repository_root
from ..results import FileReport, Report
from ..rule import Rule
from ..version import __version__
from ..vocab import Severity
from .rules import rule_from_page, rule_page, what_it_does

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "note"}
SRCROOT = "%SRCROOT%"
SECURITY_SEVERITY: dict[Severity, str] = {"error": "9.3", "warning": "5.3", "info": "2.0"}
"""GitHub's ``security-severity`` (0.0-10.0; over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, under 4.0
low) for safety rules (CK1xx) by their default severity: an error-level safety finding means loading the
file can run code (CWE-502: CodeQL rates unsafe deserialization 9.8), a warning means it fails or needs
an allowlist."""


def source_root(cwd: str | os.PathLike[str] | None = None) -> Path:
    """The repository root above ``cwd`` (the nearest folder with a ``.git`` entry, a folder or a
    worktree's file), else ``cwd`` itself: what code scanning resolves result paths against."""
    start = os.path.abspath(cwd if cwd is not None else os.getcwd())
    return Path(repository_root(start) or start)


def is_pseudo(path: str) -> bool:
    """Input that is no file in the repository: stdin (``-``), bytes or a file object (``<bytes>``,
    ``<stream #2>``: how ckptlint.sources names them), unless a file of that name exists."""
    named = path == "-" or (path.startswith("<") and path.endswith(">"))
    return named and not os.path.lexists(path)


def artifact_location(path: str, root: Path) -> dict[str, str]:
    """``{"uri", "uriBaseId"}`` relative to ``root``; a file outside it gets an absolute file URI, input
    that is no file (stdin, bytes) its name alone."""
    if is_pseudo(path):
        return {"uri": quote(path)}
    full = Path(os.path.abspath(path))
    rel = os.path.relpath(full, root)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return {"uri": full.as_uri()}
    return {"uri": quote(Path(rel).as_posix()), "uriBaseId": SRCROOT}


def rule_descriptor(rule: Rule) -> dict[str, Any]:
    """A ``reportingDescriptor``: the rule page as help, GitHub's security properties for CK1xx."""
    page = rule_page(rule)
    properties: dict[str, Any] = {"tags": [rule.category]}
    if rule.category == "safety":
        properties = {"tags": ["security", rule.category], "security-severity": SECURITY_SEVERITY[rule.severity]}
    # no helpUri: the project has no published URL yet ([project.urls] is empty); help.markdown is the page
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": what_it_does(page) or rule.summary},
        "help": {"text": page, "markdown": page},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }


def _declared(code: str, rules: dict[str, Rule], severity: Severity) -> Rule:
    """The rule of a code the report uses. Every code in a checked report is declared; a report
    assembled by hand may hold one the caller passed no rule for: its shipped page, else a stand-in."""
    if code in rules:
        return rules[code]
    return rule_from_page(code, severity) or Rule(
        code, f"undeclared-{code.lower()}", severity, f"findings of {code}, a rule no loaded plugin declares")


def unique_files(report: Report, root: Path) -> list[tuple[FileReport, dict[str, str]]]:
    """Each file once (the first report of it), with its artifact location: a path given twice, or
    as ``a/../a``, is one artifact, and code scanning would show its results twice. Stdin and byte
    inputs are never merged: two of them are two inputs."""
    seen: set[str] = set()
    out = []
    for fr in report.files:
        loc = artifact_location(fr.path, root)
        if is_pseudo(fr.path) or loc["uri"] not in seen:
            seen.add(loc["uri"])
            out.append((fr, loc))
    return out


def render_sarif(report: Report, options: dict[str, Any]) -> str:
    rules: dict[str, Rule] = options.get("rules") or {}
    root = source_root(options.get("source_root"))
    files = unique_files(report, root)
    used = sorted({f.code for fr, _ in files for f in fr.findings})
    severity = {f.code: f.severity for fr, _ in reversed(files) for f in fr.findings}
    declared = [_declared(c, rules, severity[c]) for c in used]
    index = {r.code: i for i, r in enumerate(declared)}
    artifacts = [(fr, loc) for fr, loc in files if not is_pseudo(fr.path)]
    where = {id(fr): {**loc, "index": i} for i, (fr, loc) in enumerate(artifacts)}
    results = []
    for fr, loc in files:
        for f in fr.findings:
            text = f.message + (f"\nFix: {f.fix}" if f.fix else "")
            location: dict[str, Any] = {
                "physicalLocation": {"artifactLocation": where.get(id(fr), loc), "region": {"startLine": 1}},
            }
            if f.key:
                location["logicalLocations"] = [{"fullyQualifiedName": f.key, "kind": "member"}]
            fingerprint = hashlib.sha256(f"{f.code}\0{loc['uri']}\0{f.key or ''}".encode()).hexdigest()[:32]
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
                      "locations": [{"physicalLocation": {"artifactLocation": where.get(id(fr), loc)}}]}
                     for fr, loc in files if fr.error is not None]
    notifications += [{"level": "note", "message": {"text": f"{fr.path}: skipped: {fr.error}"},
                       "locations": [{"physicalLocation": {"artifactLocation": artifact_location(fr.path, root)}}]}
                      for fr in report.skipped]  # a folder walk's non-checkpoints: not results, not failures
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ckptlint", "version": __version__,
                                "semanticVersion": __version__.split(".dev")[0],
                                "rules": [rule_descriptor(r) for r in declared]}},
            "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri().rstrip("/") + "/"}},
            "artifacts": [{"location": loc, **({"length": fr.inventory.facts.file_size} if fr.inventory else {})}
                          for fr, loc in artifacts],
            "results": results,
            "invocations": [{"executionSuccessful": not report.unreadable,
                             "toolExecutionNotifications": notifications}],
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(log, indent=2)
