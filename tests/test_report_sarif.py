"""SARIF as GitHub code scanning reads it: validated against the official 2.1.0 schema (vendored in
tests/schemas), real rule entries for every code, security properties, URIs relative to the repository
root, each file once. Torch-free: the inputs are written by hand and checked for real."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jsonschema
import pytest

import ckptlint
from ckptlint.plugin.manager import all_rules
from ckptlint.report.sarif import SECURITY_SEVERITY, render_sarif, source_root
from ckptlint.results import FileReport, Report

from conftest import CliRunner

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())
EVIL = b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00xq\x00\x85R."
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-F]{2})*$")
"""RFC 3986: a URI is made of unreserved and reserved characters and percent-encodings only."""


def _validate(log: dict[str, Any]) -> dict[str, Any]:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(log)
    (run,) = log["runs"]
    return dict(run)


def _sarif(report: Report, **options: Any) -> dict[str, Any]:
    return _validate(json.loads(render_sarif(report, options)))


def _every_rule_report() -> Report:
    """One finding of every declared rule, made through the rule itself (as the checker does)."""
    findings = [rule.finding(f"example finding of {rule.name}") for rule in all_rules().values()]
    return Report([FileReport("weights/model.pt", "torch-zip", findings=findings)])


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    (repo / "sub" / "weights").mkdir(parents=True)
    (repo / ".git").mkdir()  # what source_root looks for; test_source_root_is_gits_top_level asks git itself
    (repo / "sub" / "weights" / "evil.pkl").write_bytes(EVIL)
    (repo / "sub" / "weights" / "notes.pt").write_text("not a checkpoint\n")
    return repo


@pytest.mark.parametrize("passed", ["declared rules", "no rules passed"])
def test_every_rule_has_a_real_entry(passed: str) -> None:
    rules = all_rules()
    run = _sarif(_every_rule_report(), **({"rules": rules} if passed == "declared rules" else {}))
    entries = run["tool"]["driver"]["rules"]
    assert [e["id"] for e in entries] == sorted(rules)
    assert any(e["id"].startswith("CK9") for e in entries)
    for e in entries:
        rule = rules[e["id"]]
        assert e["name"] == rule.name and SLUG.match(e["name"]) and e["name"] != e["id"]
        assert e["shortDescription"]["text"] == rule.summary
        page = resources.files("ckptlint").joinpath(f"rules/docs/{rule.code}.md").read_text("utf-8")
        assert e["help"]["markdown"] == e["help"]["text"] == page  # the rule page, not the summary again
        assert e["help"]["markdown"].startswith(f"# {rule.code} {rule.name}\n")
        full = e["fullDescription"]["text"]
        assert full and full != rule.summary and full in " ".join(page.split())
        assert e["defaultConfiguration"]["level"] == {"error": "error", "warning": "warning", "info": "note"}[
            rule.severity]
        assert "helpUri" not in e  # the project has no published URL ([project.urls] is empty)
        tags = e["properties"]["tags"]
        if rule.code.startswith("CK1"):
            assert tags[0] == "security"
            severity = e["properties"]["security-severity"]
            assert severity == SECURITY_SEVERITY[rule.severity] and 0.0 < float(severity) <= 10.0
        else:
            assert "security" not in tags and "security-severity" not in e["properties"]
    critical = next(e for e in entries if e["id"] == "CK101")["properties"]["security-severity"]
    assert float(critical) > 9.0  # GitHub: over 9.0 is "critical" (loading runs the attacker's code)
    driver = run["tool"]["driver"]
    assert "informationUri" not in driver
    assert "github.com/ckptlint" not in json.dumps(run)


def test_uris_are_relative_to_the_repository_root(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(git_repo / "sub")
    report = ckptlint.check(["weights/evil.pkl", "weights/notes.pt"])
    run = _sarif(report, rules=all_rules())
    root = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert root == git_repo.as_uri() + "/" and root.endswith("/") and URI_CHARS.match(root)
    locations = [res["locations"][0]["physicalLocation"]["artifactLocation"] for res in run["results"]]
    locations += [n["locations"][0]["physicalLocation"]["artifactLocation"]
                  for n in run["invocations"][0]["toolExecutionNotifications"]]
    locations += [a["location"] for a in run["artifacts"]]
    assert {loc["uri"] for loc in locations} == {"sub/weights/evil.pkl", "sub/weights/notes.pt"}
    assert all(loc["uriBaseId"] == "%SRCROOT%" for loc in locations)
    for res in run["results"]:  # the index points at the artifact with the same location
        loc = res["locations"][0]["physicalLocation"]["artifactLocation"]
        assert run["artifacts"][loc["index"]]["location"]["uri"] == loc["uri"]
    ck101 = next(r for r in run["results"] if r["ruleId"] == "CK101")
    assert ck101["level"] == "error" and "posix.system" in ck101["message"]["text"]


def test_outside_a_repository_the_working_directory_is_the_root(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    odd = here / "my weights #1 100%.pkl"
    odd.write_bytes(EVIL)
    (elsewhere / "evil.pkl").write_bytes(EVIL)
    monkeypatch.chdir(here)
    run = _sarif(ckptlint.check([odd.name, str(elsewhere / "evil.pkl")]), rules=all_rules())
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == here.as_uri() + "/"
    by_uri = {a["location"]["uri"]: a["location"] for a in run["artifacts"]}
    inside = by_uri["my%20weights%20%231%20100%25.pkl"]
    assert inside["uriBaseId"] == "%SRCROOT%" and unquote(inside["uri"]) == odd.name
    outside = by_uri[(elsewhere / "evil.pkl").as_uri()]
    assert "uriBaseId" not in outside and urlsplit(outside["uri"]).scheme == "file"
    for uri in by_uri:
        assert URI_CHARS.match(uri), uri


def test_a_file_given_twice_is_reported_once(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(git_repo)
    evil = git_repo / "sub" / "weights" / "evil.pkl"
    checked = ckptlint.check(["sub/weights/evil.pkl"]).files[0]
    # whatever the CLI's own deduplication does, the writer sees every spelling of one file as one artifact
    spellings = ["sub/weights/evil.pkl", "./sub/weights/evil.pkl", str(evil), "sub/../sub/weights/evil.pkl"]
    report = Report([FileReport(p, checked.format, checked.error, checked.findings, checked.verdict,
                                checked.inventory) for p in spellings])
    run = _sarif(report, rules=all_rules())
    assert [a["location"]["uri"] for a in run["artifacts"]] == ["sub/weights/evil.pkl"]
    assert len(run["results"]) == len(checked.findings)
    fingerprints = [r["partialFingerprints"]["primaryLocationLineHash"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)


def test_the_cli_writes_the_same_log(git_repo: Path, cli: CliRunner) -> None:
    out = git_repo / "ckptlint.sarif"
    proc = cli("check", "--format", "sarif", "--output", str(out), "weights/evil.pkl", "weights/evil.pkl",
               cwd=git_repo / "sub")
    assert proc.returncode == 1, proc.stderr
    run = _validate(json.loads(out.read_text()))
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]} == {
        "sub/weights/evil.pkl"}
    assert len([r for r in run["results"] if r["ruleId"] == "CK101"]) == 1
    entry = next(e for e in run["tool"]["driver"]["rules"] if e["id"] == "CK101")
    assert "security" in entry["properties"]["tags"] and entry["help"]["markdown"].startswith("# CK101")


@pytest.mark.integration
def test_source_root_is_gits_top_level(tmp_path: Path) -> None:
    """The oracle is ``git rev-parse --show-toplevel``: in a repository, a sub-folder, a linked worktree
    (whose ``.git`` is a file) and a folder outside any repository (then the folder itself)."""
    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    repo = tmp_path / "repo"
    (repo / "a" / "b").mkdir(parents=True)
    git("init", "-q", cwd=tmp_path / "repo")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=repo)
    (tmp_path / "wt" / "c").mkdir()
    for cwd in (repo, repo / "a" / "b", tmp_path / "wt", tmp_path / "wt" / "c"):
        assert source_root(cwd) == Path(git("rev-parse", "--show-toplevel", cwd=cwd)), cwd
    (tmp_path / "plain").mkdir()
    assert source_root(tmp_path / "plain") == tmp_path / "plain"


def test_stdin_and_bytes_inputs_are_not_repository_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil.pkl").write_bytes(EVIL)
    monkeypatch.chdir(tmp_path)
    report = ckptlint.check([EVIL, EVIL + b"\n", "evil.pkl"])  # two different byte inputs, one file
    first, second = (quote(fr.path) for fr in report.files[:2])
    assert first != second and report.files[2].path == "evil.pkl"
    run = _sarif(report, rules=all_rules())
    assert [a["location"]["uri"] for a in run["artifacts"]] == ["evil.pkl"]
    by_uri: dict[str, int] = {}
    for res in run["results"]:
        loc = res["locations"][0]["physicalLocation"]["artifactLocation"]
        by_uri[loc["uri"]] = by_uri.get(loc["uri"], 0) + 1
        assert ("uriBaseId" in loc) == (loc["uri"] == "evil.pkl") == ("index" in loc)
    per_file = len(report.files[2].findings)
    assert by_uri == {first: len(report.files[0].findings), second: len(report.files[1].findings),
                      "evil.pkl": per_file}
    assert len(report.files[0].findings) > 0 and len(report.files[1].findings) > 0
