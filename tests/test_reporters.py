"""Every output format, validated: SARIF against the official 2.1.0 schema, JSON against ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import torch

SARIF_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptlint", "check", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def test_sarif_validates_against_the_official_schema(repo: Path) -> None:
    proc = _run(repo, "--format", "sarif", *MODEL, *FILES)
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
    again = json.loads(_run(repo, "--format", "sarif", *MODEL, *FILES).stdout)
    fps = lambda lg: sorted(r["partialFingerprints"]["primaryLocationLineHash"] for r in lg["runs"][0]["results"])  # noqa: E731
    assert fps(again) == fps(log)  # stable across runs


def test_json_validates_against_the_shipped_schema(repo: Path) -> None:
    schema = json.loads(resources.files("ckptlint").joinpath("schemas", "report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    proc = _run(repo, "--format", "json", *MODEL, *FILES)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema)
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["weights/ddp.pt"]["compat"]["fix"]["renames"] == [["^module\\.", ""]]
    assert by_path["weights/notes.pt"]["error"]


def test_github_annotations(repo: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary))
    proc = _run(repo, "--format", "github", "weights/evil.bin", "weights/full.pt", "weights/clean.pt", env=env)
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in lines)
    evil = next(line for line in lines if "CK101" in line)
    assert evil.startswith("::error file=weights/evil.bin,line=1,title=CK101 dangerous-global::")
    assert "\n" not in evil and "%0AFix%3A" not in evil and "%0AFix:" in evil  # data escaping, not property
    assert "## ckptlint report" in summary.read_text()


def test_markdown_policy_report(repo: Path) -> None:
    proc = _run(repo, "--format", "markdown", *MODEL, "weights/ddp.pt", "weights/evil.bin", "weights/clean.pt")
    md = proc.stdout
    assert md.startswith("## ckptlint report")
    assert "| ❌ | `weights/evil.bin`" in md.replace("  ", " ") or "`weights/evil.bin`" in md
    assert "### `weights/ddp.pt`" in md and "### `weights/evil.bin`" in md
    assert "### `weights/clean.pt`" not in md  # clean files appear only in the summary table
    assert "```python" in md and "re.sub(pattern, replacement, key)" in md
    assert "**Fixes**" in md


def test_text_has_no_colour_when_piped(repo: Path) -> None:
    proc = _run(repo, "weights/evil.bin")
    assert "\x1b[" not in proc.stdout
    assert "CK101" in proc.stdout and "fix:" in proc.stdout


def test_output_file_and_unknown_format(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    proc = _run(repo, "--format", "sarif", "--output", str(out), "weights/evil.bin")
    assert proc.returncode == 1 and proc.stdout == ""
    jsonschema.validate(json.loads(out.read_text()), SARIF_SCHEMA)
    bad = _run(repo, "--format", "xml", "weights/evil.bin")
    assert bad.returncode == 2 and "unknown format 'xml'" in bad.stderr


def test_text_is_coloured_only_on_a_terminal(repo: Path) -> None:
    import pty

    parent, child = pty.openpty()
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "ckptlint", "check", "weights/evil.bin"], stdout=child,
                          stderr=subprocess.PIPE, cwd=repo, env=env, timeout=120)
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
    out = b"".join(chunks).decode()
    assert proc.returncode == 1
    assert "\x1b[31m" in out and "CK101" in out  # the error row in red
    env["NO_COLOR"] = "1"
    plain = subprocess.run([sys.executable, "-m", "ckptlint", "check", "weights/evil.bin"], capture_output=True,
                           text=True, cwd=repo, env=env, timeout=120)
    assert "\x1b[" not in plain.stdout
