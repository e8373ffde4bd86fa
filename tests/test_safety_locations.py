"""Storage location tags no torch deserializer takes (fuzz seed 1 index 19132 zip ``cp\\n``, 70597 legacy ``cpt``).

Without ``map_location`` torch.load raises "don't know how to restore data location" at such a
storage, on every machine; with ``map_location="cpu"`` the tag is never looked at and the rest of
the pickle runs. So the readers read on (a payload after the storage stays reported) and only the
weights_only verdict, which is about ``torch.load(f, weights_only=True)``, is a no."""

from __future__ import annotations

import datetime
from pathlib import Path
from types import ModuleType

import pytest

from ckptlint.checker import check_file
from ckptlint.safety.locations import restorable


@pytest.mark.parametrize("tag", ["cpu", "meta", "mps", "mps:0", "cuda", "cuda:0", "cuda1", "xpu:3", "hpu",
                                 "privateuseone:0", "mtia0"])
def test_tags_a_registered_deserializer_takes(tag: str) -> None:
    assert restorable(tag)


@pytest.mark.parametrize("tag", ["cpt", "cp\n", "cpu:0", "CPU", "gpu", "", "None", "5", "cudax", " cuda"])
def test_tags_no_deserializer_takes(tag: str) -> None:
    assert not restorable(tag)


def _retagged(torch: ModuleType, path: Path, *, zip_format: bool) -> Path:
    """torch.save output whose storage tags an attacker rewrote from ``cpu`` to ``cpt`` (same length)."""
    obj = {"w": torch.arange(4.0), "later": datetime.date(2020, 1, 1)}
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    assert data.count(b"cpu") >= 1
    path.write_bytes(data.replace(b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00cpt"))
    return path


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_unrestorable_tag_is_a_definite_no_and_the_pickle_is_read_on(
        torch: ModuleType, tmp_path: Path, zip_format: bool) -> None:
    fr = check_file(_retagged(torch, tmp_path / "t.pt", zip_format=zip_format))
    assert fr.inventory is not None and not fr.inventory.stops
    # the global after the storage still counts: torch.load(f, map_location="cpu") reaches it
    assert "datetime.date" in {g.qualname for g in fr.inventory.globals}
    assert fr.verdict is not None and fr.verdict.loads is False
    assert any("don't know how to restore data location" in b.detail and "'cpt'" in b.detail
               for b in fr.verdict.blocking)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_plain_cpu_tags_are_no_blocker(torch: ModuleType, tmp_path: Path, zip_format: bool) -> None:
    p = tmp_path / "t.pt"
    torch.save({"w": torch.arange(4.0)}, p, _use_new_zipfile_serialization=zip_format)
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is True
