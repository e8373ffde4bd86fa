"""Configuration discovery: the nearest [tool.ckptlint] above the checked file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conftest import CliResult, CliRunner

Check = Callable[..., CliResult]
Writer = Callable[[Path], Path]


@pytest.fixture
def check(cli: CliRunner) -> Check:
    """``ckptlint check --format json ARGS``, in-process."""
    return lambda *args: cli("check", "--format", "json", *args)


@pytest.fixture
def namespace_ckpt(torch: ModuleType) -> Writer:
    """Writes a checkpoint holding an argparse.Namespace (CK104/CK105 until trusted) at a path."""
    def write(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"w": torch.ones(2), "args": argparse.Namespace(lr=0.1)}, path)
        return path
    return write


def test_trusted_globals_from_pyproject(tmp_path: Path, check: Check, namespace_ckpt: Writer) -> None:
    ckpt = namespace_ckpt(tmp_path / "proj" / "weights" / "a.pt")
    before = json.loads(check(str(ckpt)).stdout)["files"][0]
    assert {f["code"] for f in before["findings"]} == {"CK104", "CK105"}
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ckptlint]\ntrusted-globals = ["argparse.Namespace"]\n')
    after = json.loads(check(str(ckpt)).stdout)["files"][0]
    assert after["findings"] == []
    assert after["weights_only"]["loads"] is True
    isolated = json.loads(check("--isolated", str(ckpt)).stdout)["files"][0]
    assert isolated["findings"] == before["findings"]


def test_nearest_config_wins_and_ckptlint_toml(tmp_path: Path, check: Check, namespace_ckpt: Writer) -> None:
    ckpt = namespace_ckpt(tmp_path / "proj" / "sub" / "a.pt")
    (tmp_path / "proj" / "pyproject.toml").write_text('[tool.ckptlint]\ntrusted-globals = ["argparse.Namespace"]\n')
    (tmp_path / "proj" / "sub" / "ckptlint.toml").write_text("trusted-globals = []\n")
    entry = json.loads(check(str(ckpt)).stdout)["files"][0]
    assert "CK104" in {f["code"] for f in entry["findings"]}  # the nearer file trusts nothing
    explicit = json.loads(check("--config", str(tmp_path / "proj" / "pyproject.toml"), str(ckpt)).stdout)
    assert explicit["files"][0]["findings"] == []


def test_pyproject_without_table_is_skipped(tmp_path: Path, check: Check, namespace_ckpt: Writer) -> None:
    ckpt = namespace_ckpt(tmp_path / "proj" / "pkg" / "a.pt")
    (tmp_path / "proj" / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    (tmp_path / "proj" / "ckptlint.toml").write_text('trusted-globals = ["argparse.Namespace"]\n')
    assert json.loads(check(str(ckpt)).stdout)["files"][0]["findings"] == []


def test_bad_config_is_one_line(tmp_path: Path, check: Check, namespace_ckpt: Writer) -> None:
    ckpt = namespace_ckpt(tmp_path / "a.pt")
    (tmp_path / "ckptlint.toml").write_text("trusted-globals = 3\n")
    proc = check(str(ckpt))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "trusted-globals" in proc.stderr
    (tmp_path / "ckptlint.toml").write_text("tursted-globals = []\n")
    proc = check(str(ckpt))
    assert proc.returncode == 2 and "unknown key" in proc.stderr
    (tmp_path / "ckptlint.toml").write_text("[[[\n")
    proc = check(str(ckpt))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
