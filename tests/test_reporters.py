"""Every output format, validated: SARIF against the official 2.1.0 schema, JSON against ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from conftest import CliResult, CliRunner

SARIF_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())
Check = Callable[..., CliResult]


@pytest.fixture
def check(cli: CliRunner) -> Check:
    """``check(cwd, *args, env=...)``: ``ckptlint check ARGS`` in ``cwd``, in-process."""
    def run(cwd: Path, *args: str, env: dict[str, str | None] | None = None) -> CliResult:
        return cli("check", *args, cwd=cwd, env=env)
    return run


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    d = tmp_path_factory.mktemp("repo")
    (d / "weights").mkdir()
    import torchvision
    model = torchvision.models.resnet18(num_classes=10)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd}, d / "weights" / "ddp.pt")
    torch.save(model, d / "weights" / "full.pt")
    (d / "weights" / "evil.bin").write_bytes(b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00xq\x00\x85R.")
    (d / "weights" / "notes.pt").write_text("not a checkpoint\n")
    torch.save(model.state_dict(), d / "weights" / "clean.pt")
    return d


FILES = ("weights/ddp.pt", "weights/full.pt", "weights/evil.bin", "weights/notes.pt", "weights/clean.pt")
MODEL = ("--model", "torchvision.models:resnet18", "--model-kwargs", '{"num_classes": 10}')


def test_sarif_validates_against_the_official_schema(repo: Path, check: Check) -> None:
    proc = check(repo, "--format", "sarif", *MODEL, *FILES)
    assert proc.returncode == 2  # notes.pt is not a checkpoint
    log = json.loads(proc.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {"CK101", "CK102", "CK201", "CK202", "CK902"} <= set(rule_ids)
    for r in run["tool"]["driver"]["rules"]:  # what GitHub code scanning requires of a rule
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"] and r["help"]["text"]
    uris = {res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for res in run["results"]}
    assert uris == {"weights/ddp.pt", "weights/full.pt", "weights/evil.bin", "weights/notes.pt"}
    for res in run["results"]:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["partialFingerprints"]["primaryLocationLineHash"]
        assert res["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    evil = [r for r in run["results"] if r["ruleId"] == "CK101"]
    assert evil and evil[0]["level"] == "error" and "posix.system" in evil[0]["message"]["text"]
    again = json.loads(check(repo, "--format", "sarif", *MODEL, *FILES).stdout)
    assert _fingerprints(again) == _fingerprints(log)  # stable across runs


def _fingerprints(log: dict[str, Any]) -> list[str]:
    return sorted(r["partialFingerprints"]["primaryLocationLineHash"] for r in log["runs"][0]["results"])


def test_json_validates_against_the_shipped_schema(repo: Path, check: Check) -> None:
    schema = json.loads(resources.files("ckptlint").joinpath("schemas").joinpath("report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    proc = check(repo, "--format", "json", *MODEL, *FILES)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema)
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["weights/ddp.pt"]["compat"]["fix"]["renames"] == [["^module\\.", ""]]
    assert by_path["weights/notes.pt"]["error"]


def test_github_annotations(repo: Path, tmp_path: Path, check: Check) -> None:
    summary = tmp_path / "summary.md"
    proc = check(repo, "--format", "github", "weights/evil.bin", "weights/full.pt", "weights/clean.pt",
               env={"GITHUB_STEP_SUMMARY": str(summary)})
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in lines)
    evil = next(line for line in lines if "CK101" in line)
    assert evil.startswith("::error file=weights/evil.bin,line=1,title=CK101 dangerous-global::")
    assert "\n" not in evil and "%0AFix%3A" not in evil and "%0AFix:" in evil  # data escaping, not property
    assert "## ckptlint report" in summary.read_text()


def test_markdown_policy_report(repo: Path, check: Check) -> None:
    proc = check(repo, "--format", "markdown", *MODEL, "weights/ddp.pt", "weights/evil.bin", "weights/clean.pt")
    md = proc.stdout
    assert md.startswith("## ckptlint report")
    assert "| ❌ | `weights/evil.bin`" in md.replace("  ", " ") or "`weights/evil.bin`" in md
    assert "### `weights/ddp.pt`" in md and "### `weights/evil.bin`" in md
    assert "### `weights/clean.pt`" not in md  # clean files appear only in the summary table
    assert "```python" in md and "re.sub(pattern, replacement, key)" in md
    assert "**Fixes**" in md


def test_text_has_no_colour_when_piped(repo: Path, check: Check) -> None:
    proc = check(repo, "weights/evil.bin")
    assert "\x1b[" not in proc.stdout
    assert "CK101" in proc.stdout and "fix:" in proc.stdout


def test_output_file_and_unknown_format(repo: Path, tmp_path: Path, check: Check) -> None:
    out = tmp_path / "report.sarif"
    proc = check(repo, "--format", "sarif", "--output", str(out), "weights/evil.bin")
    assert proc.returncode == 1 and proc.stdout == ""
    jsonschema.validate(json.loads(out.read_text()), SARIF_SCHEMA)
    bad = check(repo, "--format", "xml", "weights/evil.bin")
    assert bad.returncode == 2 and "unknown format 'xml'" in bad.stderr


def _on_a_terminal(repo: Path, env: dict[str, str]) -> tuple[int, str]:
    """``ckptlint check weights/evil.bin`` with its stdout on a pseudo-terminal: (exit code, what it printed)."""
    import pty

    parent, child = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "ckptlint", "check", "weights/evil.bin"], stdout=child,
                          stderr=subprocess.PIPE, cwd=repo, env=env, timeout=120, check=False)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    return proc.returncode, b"".join(chunks).decode()


def test_text_is_coloured_only_on_a_terminal(repo: Path) -> None:
    # A process: whether stdout is a terminal is a property of the process's file descriptor.
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    rc, out = _on_a_terminal(repo, env)
    assert rc == 1
    assert "\x1b[31m" in out and "CK101" in out  # the error row in red
    rc, out = _on_a_terminal(repo, {**env, "NO_COLOR": "1"})
    assert rc == 1 and "CK101" in out
    assert "\x1b[" not in out
