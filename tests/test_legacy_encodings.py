"""The legacy reader compares the magic number and protocol version by value, as torch does.

torch runs ``pickle.load`` for each and compares with ``!=``: every pickle spelling of the
same number is accepted, a wrong number stops torch after the pickle ran. These files are
built byte by byte; tests/differential/test_tar_legacy_vs_torch.py checks the same
spellings against torch itself.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import tarcraft as tc
from ckptlint.errors import CheckpointError
from ckptlint.formats import read_inventory

MAGIC_SPELLINGS = {
    "LONG1": tc.p2(tc.pint(tc.MAGIC)),
    "LONG4": tc.p2(b"\x8b" + struct.pack("<i", 10) + tc.MAGIC.to_bytes(10, "little")),
    "protocol-0 LONG": b"L%dL\n." % tc.MAGIC,
    "protocol-0 LONG, no suffix": b"L%d\n." % tc.MAGIC,
    "protocol-0 INT (a long literal)": b"I%d\n." % tc.MAGIC,
    "hex INT": b"I0x%x\n." % tc.MAGIC,
    "after a popped string": tc.p2(tc.uni("padding") + b"0" + tc.pint(tc.MAGIC)),
}
PROTOCOL_SPELLINGS = {
    "BININT2": tc.p2(b"M" + struct.pack("<H", 1001)),
    "BININT": tc.p2(b"J" + struct.pack("<i", 1001)),
    "LONG1": tc.p2(b"\x8a\x02" + (1001).to_bytes(2, "little")),
    "protocol-0 INT": b"I1001\n.",
    "protocol-0 LONG": b"L1001L\n.",
    "BINFLOAT 1001.0": tc.p2(b"G" + struct.pack(">d", 1001.0)),
    "protocol-0 FLOAT": b"F1001.0\n.",
}


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "legacy.pt"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("spelling", list(MAGIC_SPELLINGS))
def test_magic_number_in_any_spelling(tmp_path: Path, spelling: str) -> None:
    body = tc.uni("w") + tc.reduce_call("collections", "OrderedDict") + b"s"
    inv = read_inventory(_write(tmp_path, tc.legacy_file(obj_body=b"}" + body, magic=MAGIC_SPELLINGS[spelling])))
    assert inv.format == "torch-legacy"
    assert inv.facts.loaded_streams == tuple(f"pickle#{i}" for i in range(5))
    assert [(g.qualname, g.stream) for g in inv.globals] == [("collections.OrderedDict", "pickle#3")]
    assert not inv.stops


@pytest.mark.parametrize("spelling", list(PROTOCOL_SPELLINGS))
def test_protocol_version_in_any_spelling(tmp_path: Path, spelling: str) -> None:
    obj = b"}" + tc.uni("x") + tc.reduce_call("mod_x", "f") + b"s"
    inv = read_inventory(_write(tmp_path, tc.legacy_file(obj_body=obj, protocol=PROTOCOL_SPELLINGS[spelling])))
    assert inv.format == "torch-legacy"
    assert "pickle#3" in inv.facts.loaded_streams
    assert [g.qualname for g in inv.globals] == ["mod_x.f"]


@pytest.mark.parametrize("version", [b"I1000\n.", tc.p2(tc.pint(1002)), tc.p2(b"\x88"), tc.p2(tc.uni("1001"))])
def test_wrong_protocol_stops_where_torch_raises(tmp_path: Path, version: bytes) -> None:
    """The version pickle ran (its call is reported); the object after it is never read."""
    protocol = version if version.startswith(b"I") else version[:2] + tc.reduce_call("mod_v", "f") + b"0" + version[2:]
    obj = b"}" + tc.uni("x") + tc.reduce_call("mod_obj", "g") + b"s"
    p = _write(tmp_path, tc.legacy_file(obj_body=obj, protocol=protocol))
    if version.startswith(b"I"):  # nothing ran before torch's refusal: unreadable, with torch's reason
        with pytest.raises(CheckpointError, match="Invalid protocol version: 1000"):
            read_inventory(p)
        return
    inv = read_inventory(p)
    assert [g.qualname for g in inv.globals] == ["mod_v.f"]
    assert inv.facts.loaded_streams == ("pickle#0", "pickle#1")
    assert [s.stream for s in inv.stops] == ["pickle#1"]
    assert "Invalid protocol version" in inv.stops[0].reason


def test_wrong_magic_is_a_plain_pickle_torch_refuses(tmp_path: Path) -> None:
    """First value 1001 instead of the magic number: torch raises "Invalid magic number" after running it."""
    first = tc.p2(tc.reduce_call("mod_m", "f") + b"0" + tc.pint(1001))
    inv = read_inventory(_write(tmp_path, tc.legacy_file(magic=first)))
    assert inv.format == "pickle"
    assert inv.facts.loaded_streams == ("pickle#0",)
    assert [g.qualname for g in inv.globals] == ["mod_m.f"]


def test_undecidable_magic_reads_on(tmp_path: Path) -> None:
    """A magic number built by a call: only running it tells; the rest of the file is still scanned."""
    first = tc.p2(tc.reduce_call("mod_m", "f"))
    obj = b"}" + tc.uni("x") + tc.reduce_call("mod_obj", "g") + b"s"
    inv = read_inventory(_write(tmp_path, tc.legacy_file(obj_body=obj, magic=first)))
    assert [g.qualname for g in inv.globals] == ["mod_m.f", "mod_obj.g"]
    assert any("known only by running it" in a for a in inv.anomalies)


def test_storage_keys_and_raw_bytes(tmp_path: Path) -> None:
    """Each key's storage is an 8-byte little-endian count and its bytes, in key order."""
    pid = (b"(" + tc.uni("storage") + tc.glob("torch", "FloatStorage") + tc.uni("0") + tc.uni("cpu")
           + tc.pint(2) + b"NtQ")
    tensor = (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + tc.pint(0) + tc.pint(2) + b"\x85"
              + tc.pint(1) + b"\x85\x89" + tc.reduce_call("collections", "OrderedDict") + b"tR")
    keys = tc.p2(b"](" + tc.uni("0") + b"e")
    data = tc.legacy_file(obj_body=b"}" + tc.uni("w") + tensor + b"s", keys=keys,
                          tail=struct.pack("<q", 2) + struct.pack("<2f", 1, 2))
    inv = read_inventory(_write(tmp_path, data))
    [st] = inv.storages
    start = len(data) - 8
    assert (st.key, st.nbytes, st.entry) == ("0", 8, f"bytes {start}-{start + 8}")
    assert not inv.stops
    cut = read_inventory(_write(tmp_path, data[:-3]))
    assert [s.reason for s in cut.stops] == ["torch.load raises: storage '0' runs past the end of the file"]


@pytest.mark.parametrize(("module", "name", "loads"), [
    ("torch", "FloatStorage", True),
    ("anything", "HalfStorage", True),  # UnpicklerWrapper answers any module's legacy storage name itself
    ("torch.storage", "UntypedStorage", False),  # no dtype: AttributeError
    ("torch", "TypedStorage", False),
])
def test_legacy_storage_types(tmp_path: Path, module: str, name: str, loads: bool) -> None:
    pid = (b"(" + tc.uni("storage") + tc.glob(module, name) + tc.uni("0") + tc.uni("cpu") + tc.pint(0) + b"NtQ")
    obj = b"}" + tc.uni("s") + pid + b"s" + tc.reduce_call("mod_after", "f") + b"0"
    keys = tc.p2(b"](" + tc.uni("0") + b"e")
    inv = read_inventory(_write(tmp_path, tc.legacy_file(obj_body=obj, keys=keys, tail=struct.pack("<q", 0))))
    assert ("mod_after.f" in [g.qualname for g in inv.globals]) is loads
    assert bool(inv.stops) is not loads
