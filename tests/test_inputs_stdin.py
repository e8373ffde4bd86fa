"""``-`` reads the checkpoint from standard input: copied to a temporary file (bounded by
``Limits.max_spool_bytes``), reported as ``-``, the copy removed afterwards."""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import ckptlint
from _cli_files import safetensors_bytes
from ckptlint import Limits

DATA = safetensors_bytes({"fc.weight": [2, 3], "fc.bias": [2]})


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Standard input holds DATA; temporary files go to the returned (empty) folder."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DATA)))
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    return spool


def test_check_reads_stdin_and_names_it_dash(stdin: Path, cli: Any) -> None:
    result = cli("check", "-", "--format", "json")
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["path"] == "-" and entry["format"] == "safetensors" and entry["error"] is None
    assert result.returncode == 0, result.stderr
    assert list(stdin.iterdir()) == []  # the temporary copy is gone


def test_inspect_reads_stdin(stdin: Path, cli: Any) -> None:
    result = cli("inspect", "-", "--format", "json")
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["path"] == "-"
    assert {tuple(t["path"]) for t in entry["tensors"]} == {("fc.weight",), ("fc.bias",)}
    assert list(stdin.iterdir()) == []


def test_dash_twice_is_read_once(stdin: Path, cli: Any, tmp_path: Path) -> None:
    other = tmp_path / "b.safetensors"
    other.write_bytes(DATA)
    result = cli("check", "-", str(other), "-", "--format", "json")
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["-", str(other)]


def test_the_copy_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    report = ckptlint.check(io.BytesIO(DATA), limits=Limits(max_spool_bytes=len(DATA) - 1))
    (fr,) = report.files
    assert fr.error is not None and "limit max_spool_bytes" in fr.error
    assert report.exit_code() == 2 and [f.code for f in fr.findings] == ["CK901"]
    assert ckptlint.check(io.BytesIO(DATA), limits=Limits(max_spool_bytes=len(DATA))).files[0].error is None


def test_dash_is_a_path_in_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(DATA)  # a file called "-": the API does not read stdin for it
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not this")))
    report = ckptlint.check(["-", sys.stdin.buffer])  # standard input, in the API, is a file object
    assert [(fr.path, fr.format) for fr in report.files] == [("-", "safetensors"), ("<stream #1>", "text")]
