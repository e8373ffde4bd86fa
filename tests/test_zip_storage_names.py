"""torch.load's UnpicklerWrapper resolves a storage-type name (``FloatStorage`` …) itself, with
``StorageType(name)``, whatever module the pickle names: ``evil.FloatStorage`` imports nothing.
The reader marks such globals ``torch_resolves`` (a fact for safety/); any other name from the
same module is imported as usual. Proof: ``evil.py`` creates a marker file when imported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ckptlint

from zipcraft import Entry, build, entries_of, torch_members

LOAD = "import sys, torch; torch.load(sys.argv[1], weights_only=False)"


def _archive(tmp_path: Path, name: bytes) -> Path:
    members = entries_of(torch_members())
    out = []
    for e in members:
        if e.name.endswith(b"/data.pkl"):
            assert b"ctorch\nFloatStorage\n" in e.data
            e = Entry(e.name, e.data.replace(b"ctorch\nFloatStorage\n", b"cevil\n" + name + b"\n"))
        out.append(e)
    p = tmp_path / f"{name.decode()}.pt"
    p.write_bytes(build(out))
    return p


def _imports_evil(run_python: Callable[..., Any], tmp_path: Path, p: Path) -> bool:
    marker = tmp_path / "imported.marker"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nFloatStorage = NotAStorage = object\n")
    if marker.exists():
        marker.unlink()
    run_python("-c", LOAD, p, pythonpath=[tmp_path])  # it may raise later: only the import counts
    return marker.exists()


def test_storage_name_from_any_module_is_resolved_by_torch(
        torch: ModuleType, run_python: Callable[..., Any], tmp_path: Path) -> None:
    p = _archive(tmp_path, b"FloatStorage")
    assert not _imports_evil(run_python, tmp_path, p)
    (g,) = [g for g in ckptlint.inspect(p).globals if g.module == "evil"]
    assert g.torch_resolves and g.stream in ckptlint.inspect(p).facts.loaded_streams


def test_other_names_are_imported(torch: ModuleType, run_python: Callable[..., Any], tmp_path: Path) -> None:
    p = _archive(tmp_path, b"NotAStorage")
    assert _imports_evil(run_python, tmp_path, p)
    (g,) = [g for g in ckptlint.inspect(p).globals if g.module == "evil"]
    assert not g.torch_resolves


pytestmark = pytest.mark.integration  # torch.load runs in a subprocess
