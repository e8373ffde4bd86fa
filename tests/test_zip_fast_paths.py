"""The zip reader's shortcuts for the common archive (one call per storage in ``torchzip._checked``,
``get_all_records`` and the torch.export probe over all names at once, the cp437 codec skipped for
ASCII names, storages and tensor stubs made without a class call) read every archive exactly as their
general paths do: each archive here is read with and without them, and the inventories are equal.
Torch-free: the pickles are written opcode by opcode."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from ckptlint.errors import FormatError
from ckptlint.formats import read_inventory, torchload_zip, zipmember
from ckptlint.formats.stubs import Global, ODict, Storage, TensorStub, new_storage, new_tensor_stub
from ckptlint.formats.torchcalls import interpret_call, rebuild_tensor_v2_plain
from ckptlint.formats.zipreader import ZipArchive

from zipcraft import Entry, build

_PID = tuple[bytes, bytes, bytes, bytes, int]
"""(tag, storage type global "module\\nname", key, location, numel), as raw pickle pieces."""


def _u(s: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(s)) + s


def _pickle(pids: list[_PID]) -> bytes:
    """``{"t<i>": _rebuild_tensor_v2(<pid i>, 0, (1,), (1,), False, OrderedDict())}``, as torch.save writes it."""
    out = b"\x80\x02}("
    for i, (tag, stype, key, location, numel) in enumerate(pids):
        out += _u(f"t{i}".encode()) + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        out += _u(tag) + b"c" + stype + b"\n" + _u(key) + _u(location) + b"J" + struct.pack("<i", numel)
        out += b"tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR"
    return out + b"u."


def _archive(pids: list[_PID], records: list[Entry], prefix: bytes = b"archive") -> bytes:
    head = [Entry(prefix + b"/data.pkl", _pickle(pids)), Entry(prefix + b"/byteorder", b"little")]
    return build([*head, *records, Entry(prefix + b"/version", b"3\n")])


def _rec(key: bytes, n: int, **kw: Any) -> Entry:
    return Entry(b"archive/data/" + key, bytes(n), **kw)


F = b"torch\nFloatStorage"
OK = (b"storage", F, b"0", b"cpu", 4)
CASES: dict[str, bytes] = {
    "plain": _archive([OK, (b"storage", F, b"1", b"cpu", 2)], [_rec(b"0", 16), _rec(b"1", 8)]),
    "shared storage": _archive([OK, OK], [_rec(b"0", 16)]),
    "wrong size": _archive([OK], [_rec(b"0", 12)]),
    "record missing": _archive([OK, (b"storage", F, b"9", b"cpu", 1)], [_rec(b"0", 16)]),
    "deflated record": _archive([OK], [_rec(b"0", 16, method=8)]),
    "empty record": _archive([(b"storage", F, b"0", b"cpu", 0)], [_rec(b"0", 0)]),
    "encrypted flag": _archive([OK], [_rec(b"0", 16, flags=1)]),
    "directory attribute": _archive([OK], [_rec(b"0", 16, external_attr=0x10)]),
    "case folded name": _archive([(b"storage", F, b"Ab", b"cpu", 4)], [_rec(b"aB", 16)]),
    "duplicate names": _archive([OK], [_rec(b"0", 16), _rec(b"0", 8)]),
    "NUL in key": _archive([(b"storage", F, b"0\x00x", b"cpu", 4)], [_rec(b"0", 16)]),
    "non-ASCII key": _archive([(b"storage", F, "é".encode(), b"cpu", 4)], [_rec("é".encode(), 16)]),
    "lone surrogate key": _archive([(b"storage", F, b"\xed\xa0\x80", b"cpu", 4)], [_rec(b"0", 16)]),
    "torch.Storage alias": _archive([(b"storage", b"torch\nStorage", b"0", b"cpu", 4)], [_rec(b"0", 16)]),
    "untyped storage": _archive([(b"storage", b"torch\nUntypedStorage", b"0", b"cpu", 16)], [_rec(b"0", 16)]),
    "unknown storage type": _archive([(b"storage", b"torch\nNoSuchStorage", b"0", b"cpu", 4)], [_rec(b"0", 16)]),
    "other tag": _archive([(b"strage", F, b"0", b"cpu", 4)], [_rec(b"0", 16)]),
    "negative numel": _archive([(b"storage", F, b"0", b"cpu", -1)], [_rec(b"0", 16)]),
    "cuda location": _archive([(b"storage", F, b"0", b"cuda:0", 4)], [_rec(b"0", 16)]),
    "odd location": _archive([(b"storage", F, b"0", b"tpu", 4)], [_rec(b"0", 16)]),
    "record past the end": _archive([OK], [_rec(b"0", 16, size=1 << 20, csize=1 << 20)]),
    "name outside the folder": _archive([OK], [_rec(b"0", 16), Entry(b"elsewhere/x", b"x")]),
    "non-ASCII record name": _archive([OK], [_rec(b"0", 16), Entry("archive/é.txt".encode(), b"x")]),
    "non-UTF-8 record name": _archive([OK], [_rec(b"0", 16), Entry(b"archive/\xff.txt", b"x")]),
    "UTF-8 flag": _archive([OK], [_rec(b"0", 16), Entry("archive/é".encode(), b"x", flags=0x800)]),
    "long record name": _archive([OK], [_rec(b"0", 16), Entry(b"archive/" + b"n" * 600, b"x")]),
    "NUL in a record name": _archive([OK], [_rec(b"0", 16), Entry(b"archive/a\x00b", b"x")]),
    "TorchScript constants name": _archive([OK], [_rec(b"0", 16), Entry(b"archive/constants.pkl", b"\x80\x02).")]),
    "export probe name": _archive([OK], [_rec(b"0", 16), Entry(b"archive/archive_format", b"pt2")]),
}


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shortcut off: the general paths decide everything."""
    monkeypatch.setattr(ZipArchive, "name_index", lambda self: None)
    monkeypatch.setattr(torchload_zip, "_common_records", lambda z, r, want: False)
    monkeypatch.setattr(ZipArchive, "raw_names", property(lambda self: [b"archive_format"]))

    def py_decode(raw: bytes, flags: int) -> str:
        return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace").split("\x00", 1)[0]
    monkeypatch.setattr(zipmember, "_py_decode", py_decode)


def _reading(path: Path) -> Any:
    try:
        return read_inventory(path).to_dict()
    except Exception as e:  # noqa: BLE001 - the refusal is the reading to compare
        return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize("name", list(CASES))
def test_shortcuts_read_as_the_general_paths(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.pt"
    p.write_bytes(CASES[name])
    fast = _reading(p)
    with monkeypatch.context() as m:
        _general(m)
        general = _reading(p)
    assert fast == general


def test_the_plain_archive_takes_the_shortcuts(tmp_path: Path) -> None:
    """The comparison above means something: the plain archive takes each shortcut, and reads right."""
    data = CASES["plain"]
    z = ZipArchive(lambda o, n: data[o:o + n], len(data))
    z.local_headers()
    assert z.name_index() is not None
    reading = torchload_zip.TorchZipReading(cap=1 << 20)
    reading.prefix = b"archive"
    assert torchload_zip._common_records(z, reading, b"archive/")
    p = tmp_path / "a.pt"
    p.write_bytes(data)
    inv = read_inventory(p)
    assert [s.record_bytes for s in inv.storages] == [16, 8] and not inv.stops
    assert [t.storage_key for t in inv.tensors] == ["0", "1"]


@pytest.mark.parametrize("raw", [b"archive/data/0", b"a\x00b", b"", bytes(range(128)), "é".encode(), b"\xff\x80\x00z"])
@pytest.mark.parametrize("flags", [0, 0x800])
def test_ascii_names_decode_as_zipfile_decodes_them(raw: bytes, flags: int) -> None:
    expected = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace").split("\x00", 1)[0]
    assert zipmember._py_decode(raw, flags) == expected


def _slots(obj: Any, cls: type) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in cls.__slots__}


def test_stub_shortcuts_set_what_init_sets() -> None:
    st = Storage("k", "float32", 16, "cpu", True)
    st.resizable = False
    assert _slots(new_storage("k", "float32", 16, "cpu", True, False), Storage) == _slots(st, Storage)
    args = ("_rebuild_tensor_v2", st, 1, (2, 3), (3, 1), True, "float32", "cpu")
    assert _slots(new_tensor_stub(*args), TensorStub) == _slots(TensorStub(*args), TensorStub)


@pytest.mark.parametrize(("size", "stride"), [
    ((), ()), ((4,), (1,)), ((4, 4), (4, 1)), ((2, 3, 4), (12, 4, 1)), ((0, 5), (5, 1)), ((4,), (0,)),
    ((4, 4), (1, 4)), ((5, 5), (4, 1)), ((2, -1), (1, 1)), ((2, 2), (1, True)), ((2,), (1.0,)), ((3,), (2,)),
])
@pytest.mark.parametrize("offset", [0, 3])
def test_plain_rebuild_is_the_general_one(size: tuple[Any, ...], stride: tuple[Any, ...], offset: int) -> None:
    """``_rebuild_tensor_v2`` of torch.save's shape: the plain path (1 and 2 dimensions written out) gives
    what the general interpretation gives, or leaves the call to it (None)."""
    def reading(f: Any) -> Any:
        st = Storage("k", "float32", 64, "cpu", True)
        st.resizable = False
        try:
            t = f((st, offset, size, stride, False, ODict()))
        except FormatError as e:
            return str(e)
        return None if t is None else _slots(t, TensorStub) | {"storage": None}
    plain = reading(rebuild_tensor_v2_plain)
    general = reading(lambda a: interpret_call(Global("torch._utils", "_rebuild_tensor_v2"), a, "REDUCE"))
    assert plain is None or plain == general
    if all(type(v) is int and v >= 0 for v in (*size, *stride)) and len(size) < 3:
        assert plain is not None or isinstance(general, str)  # the shapes written out are taken


@pytest.mark.parametrize(("name", "plain"), [
    (b"archive/x", True), ("archive/é".encode(), False), (b"archive\\x", False), (b"archive/a\x00b", False),
])
def test_a_directory_is_plain_when_every_name_is_ascii_without_nul_or_backslash(name: bytes, plain: bool) -> None:
    """What pyzip.py relies on (Python's zipfile lists these entries as they are), tested for all names at once."""
    data = build([Entry(b"archive/data.pkl", b"\x80\x02)."), Entry(name, b"x"), Entry(b"archive/version", b"3\n")])
    assert ZipArchive(lambda o, n: data[o:o + n], len(data)).plain is plain
