"""``torch.load`` asks ``get_all_records()`` first (is it TorchScript?): pybind11 turns every record
name into a ``str``, strictly UTF-8, so one name that is not UTF-8 makes torch.load raise
UnicodeDecodeError before it unpickles anything (fuzz seed 203 index 316)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from ckptlint.checker import check_file

from zipcraft import Entry, build, entries_of, torch_members


def _archive(tmp_path: Path, name: bytes) -> Path:
    p = tmp_path / "names.pt"
    p.write_bytes(build([*entries_of(torch_members()), Entry(name, b"x")]))
    return p


def test_a_record_name_that_is_not_utf8_stops_torch_before_unpickling(torch: ModuleType, tmp_path: Path) -> None:
    p = _archive(tmp_path, b"archive/notes\xff.txt")
    for weights_only in (False, True):
        with pytest.raises(UnicodeDecodeError):
            torch.load(p, weights_only=weights_only)
    inv = ckptlint.inspect(p)
    assert inv.facts.loaded_streams == ()
    assert "UnicodeDecodeError" in inv.facts.extra["torch_refuses"]
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False


def test_a_utf8_record_name_is_fine(torch: ModuleType, tmp_path: Path) -> None:
    p = _archive(tmp_path, "archive/notes-é.txt".encode())
    assert set(torch.load(p, weights_only=True)) == {"w"}
    inv = ckptlint.inspect(p)
    assert "archive/data.pkl" in inv.facts.loaded_streams and "torch_refuses" not in inv.facts.extra
