"""Configuration discovery: the nearest [tool.ckptlint] above the checked file."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch


def _check(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptlint", "check", "--format", "json", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def _namespace_ckpt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(2), "args": argparse.Namespace(lr=0.1)}, path)
    return path


def test_trusted_globals_from_pyproject(tmp_path: Path) -> None:
    ckpt = _namespace_ckpt(tmp_path / "proj" / "weights" / "a.pt")
    before = json.loads(_check(str(ckpt)).stdout)["files"][0]
    assert {f["code"] for f in before["findings"]} == {"CK104", "CK105"}
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ckptlint]\ntrusted-globals = ["argparse.Namespace"]\n')
    after = json.loads(_check(str(ckpt)).stdout)["files"][0]
    assert after["findings"] == []
    assert after["weights_only"]["loads"] is True
    isolated = json.loads(_check("--isolated", str(ckpt)).stdout)["files"][0]
    assert isolated["findings"] == before["findings"]


def test_nearest_config_wins_and_ckptlint_toml(tmp_path: Path) -> None:
    ckpt = _namespace_ckpt(tmp_path / "proj" / "sub" / "a.pt")
    (tmp_path / "proj" / "pyproject.toml").write_text('[tool.ckptlint]\ntrusted-globals = ["argparse.Namespace"]\n')
    (tmp_path / "proj" / "sub" / "ckptlint.toml").write_text("trusted-globals = []\n")
    entry = json.loads(_check(str(ckpt)).stdout)["files"][0]
    assert "CK104" in {f["code"] for f in entry["findings"]}  # the nearer file trusts nothing
    explicit = json.loads(_check("--config", str(tmp_path / "proj" / "pyproject.toml"), str(ckpt)).stdout)
    assert explicit["files"][0]["findings"] == []


def test_pyproject_without_table_is_skipped(tmp_path: Path) -> None:
    ckpt = _namespace_ckpt(tmp_path / "proj" / "pkg" / "a.pt")
    (tmp_path / "proj" / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    (tmp_path / "proj" / "ckptlint.toml").write_text('trusted-globals = ["argparse.Namespace"]\n')
    assert json.loads(_check(str(ckpt)).stdout)["files"][0]["findings"] == []


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    ckpt = _namespace_ckpt(tmp_path / "a.pt")
    (tmp_path / "ckptlint.toml").write_text("trusted-globals = 3\n")
    proc = _check(str(ckpt))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "trusted-globals" in proc.stderr
    (tmp_path / "ckptlint.toml").write_text("tursted-globals = []\n")
    proc = _check(str(ckpt))
    assert proc.returncode == 2 and "unknown key" in proc.stderr
    (tmp_path / "ckptlint.toml").write_text("[[[\n")
    proc = _check(str(ckpt))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
