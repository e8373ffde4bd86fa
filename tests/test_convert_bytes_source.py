"""convert.source: each tensor's bytes found in the file as torch.load finds them (torch-free unit tier).

Files are written byte by byte (tests/_convert_files.py for zips, tests/tarcraft.py for legacy and tar files);
the expected bytes are the view's elements gathered through its strides, little-endian.
"""

from __future__ import annotations

import json
import random
import struct
import zipfile
from pathlib import Path

import pytest

import tarcraft as tc
from _convert_files import OD, T, expected_bytes, tensor, torch_zip
from ckptlint.conversion.source import FileSpan, TensorBytesError, TensorDataError, UnsupportedTensor, open_source
from ckptlint.formats import read_inventory
from ckptlint.inventory import Inventory, TensorRecord


def _base() -> T:
    return tensor("0", [float(i) for i in range(24)], (4, 6))


def _views() -> dict[str, T]:
    b = _base()
    st = b.storage
    return {
        "a": b,
        "t": T(st, (6, 4), (1, 6)),
        "slice": T(st, (2, 3), (6, 2), 6),
        "expand": T(st, (3, 6), (0, 1), 12),
        "scalar": T(st, (), (), 23),
        "empty": T(st, (0, 4), (4, 1), 3),
        "tail": T(st, (5,), (1,), 19),
        "bf16": tensor("1", [0x3F80, 0x4000, 0xC040, 0x7F80, 1, 2], (3, 2), "bfloat16"),
        "i64": T(tensor("2", list(range(-3, 9)), (12,), "int64").storage, (3, 2), (1, 3), 1),
        "c64": tensor("3", [1.0, -1.0, 2.5, 0.5], (2,), "complex64"),
        "b": tensor("4", [1, 0, 1], (3,), "bool"),
        "i8": T(tensor("5", [-1, 2, -3, 4], (4,), "int8").storage, (2, 2), (1, 2)),
    }


def _chunks(path: Path, inv: Inventory | None = None, chunk: int = 7) -> dict[str, bytes]:
    inv = inv or read_inventory(path)
    with open_source(path, inv) as src:
        return {t.key: b"".join(src.tensor_chunks(t, chunk)) for t in inv.tensors}


def _by_key(inv: Inventory, key: str) -> TensorRecord:
    return next(t for t in inv.tensors if t.key == key)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_views_of_a_zip_are_their_strided_elements(tmp_path: Path, chunk: int) -> None:
    views = _views()
    path = torch_zip(tmp_path / "v.pt", OD(views))
    got = _chunks(path, chunk=chunk)
    assert got == {k: expected_bytes(t) for k, t in views.items()}


def test_a_big_endian_zip_is_swapped_per_storage_element(tmp_path: Path) -> None:
    views = _views()
    path = torch_zip(tmp_path / "big.pt", OD(views), big_endian=True)
    assert read_inventory(path).facts.byteorder == "big"
    assert _chunks(path) == {k: expected_bytes(t) for k, t in views.items()}
    # the little-endian file's bytes differ where an element has more than one byte
    little = _chunks(torch_zip(tmp_path / "little.pt", OD(views)))
    assert little == _chunks(path)
    raw = zipfile.ZipFile(path).read("archive/data/0")
    assert raw[:4] == struct.pack(">f", 0.0) and raw[4:8] == struct.pack(">f", 1.0)


def test_deflated_members_are_inflated(tmp_path: Path) -> None:
    views = _views()
    stored = torch_zip(tmp_path / "s.pt", OD(views))
    deflated = _deflated(stored, tmp_path / "d.pt")
    assert zipfile.ZipFile(deflated).getinfo("archive/data/0").compress_type == zipfile.ZIP_DEFLATED
    inv = read_inventory(deflated)
    assert _chunks(deflated, inv) == {k: expected_bytes(t) for k, t in views.items()}
    with open_source(deflated, inv) as src:
        assert src.file_span(_by_key(inv, "a")) is None  # not as-is in the file


def _deflated(path: Path, out: Path, keep: int | None = None) -> Path:
    """``path`` with every member deflated; ``data/0`` cut to its first ``keep`` bytes."""
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if keep is not None and info.filename.endswith("data/0"):
                data = data[:keep]
            zout.writestr(info.filename, data, zipfile.ZIP_DEFLATED)
    return out


def test_a_deflate_stream_shorter_than_declared_is_torchs_error(tmp_path: Path) -> None:
    path = torch_zip(tmp_path / "s.pt", OD({"a": _base()}))
    out = _deflated(path, tmp_path / "short.pt")
    inv = read_inventory(out)  # read while whole; the record is then swapped for a short stream (the reader,
    _deflated(path, out, keep=40)  # reading the short one, stops at it as torch does)
    blob = bytearray(out.read_bytes())
    at = blob.find(b"PK\x01\x02")
    while at >= 0:  # the central header declares 96 bytes: torch (miniz) inflates 40 and fails
        name_len = struct.unpack_from("<H", blob, at + 28)[0]
        if blob[at + 46:at + 46 + name_len].endswith(b"data/0"):
            struct.pack_into("<I", blob, at + 24, 96)
        at = blob.find(b"PK\x01\x02", at + 4)
    out.write_bytes(bytes(blob))
    assert read_inventory(out).stops[0].reason.endswith("unexpected decompressed size")
    with open_source(out, inv) as src, pytest.raises(TensorDataError, match=r"'a'.*gives 40 of 96 bytes"):
        b"".join(src.tensor_chunks(_by_key(inv, "a")))


def test_file_span_is_where_a_contiguous_tensor_lies(tmp_path: Path) -> None:
    views = _views()
    path = torch_zip(tmp_path / "v.pt", OD(views))
    inv = read_inventory(path)
    raw = path.read_bytes()
    with open_source(path, inv) as src:
        span = src.file_span(_by_key(inv, "tail"))
        assert isinstance(span, FileSpan)
        assert raw[span.offset:span.offset + span.length] == expected_bytes(views["tail"])
        assert src.file_span(_by_key(inv, "t")) is None
        assert src.file_span(_by_key(inv, "expand")) is None
    big = torch_zip(tmp_path / "big.pt", OD(views), big_endian=True)
    with open_source(big, read_inventory(big)) as src:
        assert src.file_span(_by_key(read_inventory(big), "tail")) is None  # needs a swap


@pytest.mark.parametrize(("dtype", "reason"), [("complex128", "complex128 has no safetensors"),
                                                ("qint8", "qint8 has no safetensors")])
def test_dtypes_safetensors_lacks_are_refused_by_key(tmp_path: Path, dtype: str, reason: str) -> None:
    path = torch_zip(tmp_path / "u.pt", OD({"ok": _base(), "odd": tensor("9", [1, 2], (1,) if dtype == "complex128"
                                                                           else (2,), dtype)}))
    inv = read_inventory(path)
    with open_source(path, inv) as src:
        src.check(_by_key(inv, "ok"))
        with pytest.raises(UnsupportedTensor, match=f"'odd'.*{reason}") as e:
            src.check(_by_key(inv, "odd"))
        assert e.value.key == "odd"
        with pytest.raises(UnsupportedTensor):
            list(src.tensor_chunks(_by_key(inv, "odd")))


def _legacy(storages: list[tuple[str, str, list[float]]], tensors: dict[str, tuple[str, tuple[int, ...],
                                                                                  tuple[int, ...], int]]) -> bytes:
    """A legacy torch.save file: tensors ``key -> (storage key, shape, stride, offset)`` of float32 storages."""
    body = tc.glob("collections", "OrderedDict") + b")R("
    numel = {k: len(v) for k, _, v in storages}
    for name, (skey, shape, stride, off) in tensors.items():
        pid = (b"(" + tc.uni("storage") + tc.glob("torch", "FloatStorage") + tc.uni(skey) + tc.uni("cpu")
               + tc.pint(numel[skey]) + b"Nt")
        body += (tc.uni(name) + tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + tc.pint(off)
                 + b"(" + b"".join(tc.pint(n) for n in shape) + b"t(" + b"".join(tc.pint(s) for s in stride)
                 + b"t\x89" + tc.glob("collections", "OrderedDict") + b")RtR")
    body += b"u"
    keys = tc.p2(b"](" + b"".join(tc.uni(k) for k, _, _ in storages) + b"e")
    tail = b"".join(struct.pack("<q", len(v)) + struct.pack(f"<{len(v)}f", *v) for _, _, v in storages)
    return tc.legacy_file(body, keys=keys, tail=tail)


def test_legacy_storages_after_the_pickles(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    views = {"w": ("10", (3, 4), (4, 1), 0), "wt": ("10", (4, 2), (1, 4), 1), "v": ("11", (2,), (1,), 0)}
    path.write_bytes(_legacy([("10", "f", [float(i) for i in range(12)]), ("11", "f", [7.0, 8.0])], views))
    inv = read_inventory(path)
    assert inv.format == "torch-legacy" and not inv.stops
    got = _chunks(path, inv, chunk=4)
    f = [float(i) for i in range(12)]
    assert got["w"] == struct.pack("<12f", *f)
    assert got["wt"] == struct.pack("<8f", *[f[1 + i + 4 * j] for i in range(4) for j in range(2)])
    assert got["v"] == struct.pack("<2f", 7.0, 8.0)


def test_tar_storages_inside_the_storages_member(tmp_path: Path) -> None:
    tt = tc.TorchTar(tensors={"w": [1.0, 2.0, 3.0], "v": [4.0, 5.0]})
    path = tmp_path / "old.tar"
    path.write_bytes(tc.tar_bytes(tt.members()))
    inv = read_inventory(path)
    assert inv.format == "torch-tar"
    assert _chunks(path, inv, chunk=4) == {"w": struct.pack("<3f", 1, 2, 3), "v": struct.pack("<2f", 4, 5)}


def test_a_shard_index_reads_each_shard(tmp_path: Path) -> None:
    views = _views()
    torch_zip(tmp_path / "p1.bin", OD({"a": views["a"], "t": views["t"]}))
    torch_zip(tmp_path / "p2.bin", OD({"slice": views["slice"]}))
    index = tmp_path / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"a": "p1.bin", "t": "p1.bin", "slice": "p2.bin"}}))
    inv = read_inventory(index)
    assert inv.format == "sharded-index"
    assert _chunks(index, inv) == {k: expected_bytes(views[k]) for k in ("a", "t", "slice")}


def test_a_missing_shard_is_a_data_error_naming_the_tensor(tmp_path: Path) -> None:
    torch_zip(tmp_path / "p1.bin", OD({"a": _base()}))
    index = tmp_path / "m.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "p1.bin"}}))
    inv = read_inventory(index)
    (tmp_path / "p1.bin").unlink()
    with open_source(index, inv) as src, pytest.raises(TensorDataError, match=r"'a'.*p1\.bin"):
        src.check(inv.tensors[0])


def test_a_truncated_legacy_range_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    path.write_bytes(_legacy([("10", "f", [1.0, 2.0, 3.0, 4.0])], {"w": ("10", (4,), (1,), 0)}))
    inv = read_inventory(path)
    path.write_bytes(path.read_bytes()[:-6])  # the file changed after it was read
    with open_source(path, inv) as src, pytest.raises(TensorDataError, match="'w'"):
        b"".join(src.tensor_chunks(inv.tensors[0]))


def test_nothing_is_read_before_the_first_piece_is_asked_for(tmp_path: Path) -> None:
    path = torch_zip(tmp_path / "v.pt", OD({"a": _base()}))
    inv = read_inventory(path)
    with open_source(path, inv) as src:
        it = src.tensor_chunks(inv.tensors[0], 16)
        first = next(it)
        assert first == expected_bytes(_base())[:16]
        assert len(b"".join(it)) == 96 - 16


def _raw_pickle(values: list[float], shape: tuple[int, ...], stride: tuple[int, ...], text: bool) -> bytes:
    """``pickle.dump({"w": tensor})`` as torch pickles a tensor: ``_rebuild_tensor_v2(_load_from_bytes(b), ...)``,
    ``b`` a legacy torch.save of the storage (protocol 3+: a BINBYTES; protocol 2: ``_codecs.encode(text)``)."""
    pid = (b"(" + tc.uni("storage") + tc.glob("torch", "FloatStorage") + tc.uni("7") + tc.uni("cpu")
           + tc.pint(len(values)) + b"Nt")
    nested = tc.legacy_file(pid + b"Q", keys=tc.p2(b"]" + tc.uni("7") + b"a"),
                            tail=struct.pack("<q", len(values)) + struct.pack(f"<{len(values)}f", *values))
    if text:
        blob = tc.glob("_codecs", "encode") + tc.uni(nested.decode("latin-1")) + tc.uni("latin1") + b"\x86R"
    else:
        blob = b"B" + struct.pack("<I", len(nested)) + nested
    storage = tc.glob("torch.storage", "_load_from_bytes") + blob + b"\x85R"
    t = (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + tc.pint(0)
         + b"(" + b"".join(tc.pint(n) for n in shape) + b"t(" + b"".join(tc.pint(s) for s in stride) + b"t\x89"
         + tc.glob("collections", "OrderedDict") + b")RtR")
    return b"\x80\x03}" + tc.uni("w") + t + b"s."


@pytest.mark.parametrize("text", [False, True])
def test_a_raw_pickles_storage_is_its_nested_torch_save(tmp_path: Path, text: bool) -> None:
    values = [0.5, 1.0, 200.0, -3.0, 4.0, 5.0]  # 200.0 = 0x43480000: a byte past 0x7f, two bytes of UTF-8 as text
    path = tmp_path / "raw.pkl"
    path.write_bytes(_raw_pickle(values, (3, 2), (1, 3), text))
    inv = read_inventory(path)
    assert inv.format == "pickle"
    (rec,) = inv.tensors
    assert rec.dtype == "unknown" and rec.storage_key is not None and rec.storage_key.startswith("inline:")
    with open_source(path, inv) as src:
        assert src.resolve(rec).dtype == "float32"
        assert src.safetensors_dtype(rec) == "F32" and src.nbytes(rec) == 24
        got = b"".join(src.tensor_chunks(rec, 8))
    assert got == struct.pack("<6f", *[values[i + 3 * j] for i in range(3) for j in range(2)])


def _samples(tmp_path: Path) -> list[Path]:
    zip_path = torch_zip(tmp_path / "v.pt", OD(_views()))
    deflated = _deflated(zip_path, tmp_path / "d.pt")
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(_legacy([("10", "f", [float(i) for i in range(12)])], {"w": ("10", (4, 3), (1, 4), 0)}))
    tar = tmp_path / "old.tar"
    tar.write_bytes(tc.tar_bytes(tc.TorchTar(tensors={"w": [1.0, 2.0, 3.0], "v": [4.0]}).members()))
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(_raw_pickle([1.0, 2.0, 3.0, 4.0], (2, 2), (1, 2), False))
    return [zip_path, deflated, legacy, tar, raw]


@pytest.mark.parametrize("seed", range(6))
def test_a_file_changed_after_reading_gives_tensor_errors_only(tmp_path: Path, seed: int) -> None:
    """Whatever the bytes turn into after the Inventory was read (cut short, bytes overwritten), reading the
    tensors gives their bytes or a one-line TensorBytesError naming them, never another exception."""
    rng = random.Random(seed)
    outcomes: set[str] = set()
    for path in _samples(tmp_path):
        inv = read_inventory(path)
        good = path.read_bytes()
        for _ in range(25):
            data = bytearray(good)
            if rng.random() < 0.4:
                data = data[:rng.randrange(len(data))]
            for _ in range(rng.randrange(1, 20)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            path.write_bytes(bytes(data))
            with open_source(path, inv) as src:
                for rec in inv.tensors:
                    try:
                        b"".join(src.tensor_chunks(rec, 5))
                        outcomes.add("read")
                    except TensorBytesError as e:
                        assert "\n" not in str(e) and e.key == rec.key
                        outcomes.add(type(e).__name__)
        path.write_bytes(good)
    assert {"read", "TensorDataError"} <= outcomes


def test_a_storage_named_again_with_another_dtype_keeps_its_first(tmp_path: Path) -> None:
    """torch.load caches a storage at its first persistent id: a later id naming the key as HalfStorage gets the
    FloatStorage, and _rebuild_tensor_v2's tensor is float32 (its storage's dtype), not float16."""
    first = tensor("0", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], (8,))
    words = list(struct.unpack("<16H", struct.pack("<8f", *range(8))))  # the same 32 bytes as 16 half words
    again = T(tensor("0", words, (16,), "float16").storage, (4,))
    path = torch_zip(tmp_path / "mix.pt", OD({"a": first, "b": again}))
    inv = read_inventory(path)
    b = _by_key(inv, "b")
    assert b.dtype == "float16"  # what the second persistent id says
    with open_source(path, inv) as src:
        assert src.safetensors_dtype(b) == "F32" and src.nbytes(b) == 16
        assert b"".join(src.tensor_chunks(b)) == struct.pack("<4f", 0.0, 1.0, 2.0, 3.0)


def test_a_legacy_storage_view_reads_its_root_storage(tmp_path: Path) -> None:
    """A pre-1.0 persistent id ``('storage', FloatStorage, 'k0', 'cpu', 8, ('v0', 2, 4))`` is a view of k0 at element 2
    (torch: ``storage[2:6]``): its tensors' bytes are k0's from there."""
    def pid(view: bytes) -> bytes:
        return (b"(" + tc.uni("storage") + tc.glob("torch", "FloatStorage") + tc.uni("k0") + tc.uni("cpu")
                + tc.pint(8) + view + b"t")

    def rebuild(p: bytes, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
        return (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + p + b"Q" + tc.pint(offset)
                + b"(" + b"".join(tc.pint(n) for n in shape) + b"t(" + b"".join(tc.pint(s) for s in stride)
                + b"t\x89" + tc.glob("collections", "OrderedDict") + b")RtR")

    view = b"(" + tc.uni("v0") + tc.pint(2) + tc.pint(4) + b"t"
    body = (b"}(" + tc.uni("a") + rebuild(pid(b"N"), 0, (8,), (1,)) + tc.uni("b") + rebuild(pid(view), 1, (2,), (1,))
            + tc.uni("c") + rebuild(pid(view), 0, (2, 2), (1, 2)) + b"u")
    values = [float(i) for i in range(8)]
    path = tmp_path / "views.pt"
    path.write_bytes(tc.legacy_file(body, keys=tc.p2(b"]" + tc.uni("k0") + b"a"),
                                    tail=struct.pack("<q", 8) + struct.pack("<8f", *values)))
    inv = read_inventory(path)
    assert not inv.stops and {t.storage_key for t in inv.tensors} == {"k0"}
    got = _chunks(path, inv)
    assert got["b"] == struct.pack("<2f", 3.0, 4.0)
    assert got["c"] == struct.pack("<4f", 2.0, 4.0, 3.0, 5.0)
