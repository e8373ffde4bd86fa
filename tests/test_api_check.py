"""``ckptlint.check`` takes paths, folders, bytes and binary file objects (and lists mixing them),
and returns the exported, typed result model."""

from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

import pytest

import ckptlint
from ckptlint import FileReport, Finding, Report, Verdict

PICKLE = pickle.dumps({"a": 1}, protocol=2)
EVIL = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85q\x01Rq\x02."  # built by hand, never loaded


def test_result_types_are_exported() -> None:
    report = ckptlint.check(EVIL)
    assert isinstance(report, Report)
    (fr,) = report.files
    assert isinstance(fr, FileReport) and isinstance(fr.verdict, Verdict)
    assert fr.findings and all(isinstance(f, Finding) for f in fr.findings)
    assert {"Report", "FileReport", "Finding", "Verdict", "CheckInput", "check", "inspect"} <= set(ckptlint.__all__)
    assert all(hasattr(ckptlint, name) for name in ckptlint.__all__)


def test_bytes_are_checked_and_named() -> None:
    (fr,) = ckptlint.check(EVIL).files
    assert fr.path == "<bytes>" and fr.error is None
    assert "CK101" in {f.code for f in fr.findings}  # os.system
    assert fr.verdict is not None and not fr.verdict.loads
    assert fr.inventory is not None and fr.inventory.path == "<bytes>"
    assert ckptlint.check(bytearray(PICKLE)).files[0].format == "pickle"
    assert ckptlint.check(memoryview(PICKLE)).files[0].format == "pickle"


def test_binary_file_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(EVIL)
    with open(path, "rb") as f:
        (fr,) = ckptlint.check(f).files
    assert fr.path == str(path) and "CK101" in {x.code for x in fr.findings}
    (fr,) = ckptlint.check(io.BytesIO(EVIL)).files
    assert fr.path == "<stream>" and "CK101" in {x.code for x in fr.findings}


def test_a_list_mixing_every_kind_keeps_its_order(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_bytes(PICKLE)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "b.pt").write_bytes(PICKLE)
    report = ckptlint.check([path, EVIL, io.BytesIO(PICKLE), str(tmp_path / "w"), str(path)])
    assert [fr.path for fr in report.files] == [str(path), "<bytes #1>", "<stream #2>", str(tmp_path / "w" / "b.pt")]
    assert [fr.error for fr in report.files] == [None] * 4


def test_text_streams_and_empty_bytes_are_one_line_errors() -> None:
    (fr,) = ckptlint.check(io.StringIO("hello")).files  # a reader is one input, even one yielding str
    assert fr.error == "a text stream, not bytes: open the file in binary mode ('rb')"
    (fr,) = ckptlint.check(b"").files
    assert fr.error is not None and fr.format == "empty"


def test_temporary_copies_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ckptlint.check([EVIL, io.BytesIO(PICKLE)])
    assert list(tmp_path.iterdir()) == []
