"""A storage's location tag: torch.load restores each storage with ``default_restore_location``, which
raises for a tag no backend claims ("don't know how to restore data location ... (tagged with cpt)")
unless the caller passes ``map_location`` (``map_location="cpu"`` restores any tag). An attacker who
tags the first storage ``cpt`` and puts the payload after it gets past a reader that stops there, and
reaches everyone who loads with ``map_location``: so the machine reads on and notes where a default
torch.load stops (fuzz seed 1 index 70597, 19132)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import ckptlint


def _checkpoint(tmp_path: Path, location: str) -> Path:
    tag = location.encode()
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            b"X\x01\x00\x00\x000X" + len(tag).to_bytes(4, "little") + tag + b"K\x01tQK\x00K\x01\x85K\x01\x85\x89"
            b"ccollections\nOrderedDict\n)RtR0cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    p = tmp_path / f"{location.replace(':', '_')}.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", b"\x00" * 4)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return p


def test_payload_after_an_unrestorable_location_is_reported(tmp_path: Path) -> None:
    inv = ckptlint.inspect(_checkpoint(tmp_path, "cpt"))
    assert "os.system" in {g.qualname for g in inv.globals if g.stream in inv.facts.loaded_streams}
    assert not inv.stops
    (note,) = [n for n in inv.notes if "'cpt'" in n]
    assert "map_location" in note and f"at byte {_offset_of_binpersid(tmp_path)}" in note


def _offset_of_binpersid(tmp_path: Path) -> int:
    with zipfile.ZipFile(_checkpoint(tmp_path, "cpt")) as z:
        return z.read("archive/data.pkl").index(b"tQ") + 1


@pytest.mark.parametrize("location", ["cpu", "cuda:0", "cuda", "meta", "mps", "xpu:1", "hpu"])
def test_locations_torch_backends_restore_get_no_note(tmp_path: Path, location: str) -> None:
    inv = ckptlint.inspect(_checkpoint(tmp_path, location))
    assert not [n for n in inv.notes if "map_location" in n]
    assert "os.system" in {g.qualname for g in inv.globals}
