"""The miniz model itself, torch-free: end-record search, ZIP64, lookup order, extraction outcomes, bounds.

Which bytes torch reads is checked against torch in tests/test_zip_walkarounds.py and
tests/differential/test_zip_vs_torch.py; these pin the reader's own decisions.
"""

from __future__ import annotations

import pickle
import resource
import zlib
from pathlib import Path

import pytest

import ckptlint
from ckptlint.errors import CheckpointError
from ckptlint.formats.torchload_zip import read_like_torch
from ckptlint.formats.zipextract import extract
from ckptlint.formats.zipreader import ZipArchive, ZipStructureError, _miniz_sort
from ckptlint.limits import Limits

from zipcraft import Craft, Entry, build, value_pickle

RECORDS = [Entry(b"archive/version", b"3\n"), Entry(b"archive/byteorder", b"little")]


def _zip(data: bytes) -> ZipArchive:
    return ZipArchive(lambda o, n: data[o:o + n], len(data))


def _file(tmp_path: Path, data: bytes, name: str = "f.pt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_end_record_search_skips_a_signature_without_room() -> None:
    z = _zip(build([Entry(b"a/x", b"1")], trailing=b"PK\x05\x06" + b"\0" * 17))
    assert [m.raw_name for m in z.members] == [b"a/x"]


def test_end_record_search_takes_a_signature_inside_the_comment() -> None:
    # the comment length is never checked: the last signature with 22 bytes after it wins
    z = _zip(build([Entry(b"a/x", b"1")], comment=b"PK\x05\x06" + b"\0" * 18))
    assert z.members == []


@pytest.mark.parametrize(("trailing", "found"), [(1_000, True), (5_000, False), (60_000, False), (61_300, True),
                                                 (70_000, False)])
def test_end_record_search_window(trailing: int, found: bool) -> None:
    # 4 KiB blocks stepping back 4093 bytes, at most ~64 KiB: a step that would start before byte 0
    # fails (miniz's clamp is unsigned), so how far back the record may sit depends on the file size
    data = build([Entry(b"a/x", b"1")], trailing=b"\0" * trailing)
    if found:
        assert len(_zip(data).members) == 1
    else:
        with pytest.raises(ZipStructureError, match="failed finding central directory"):
            _zip(data)


def test_zip64_locator_is_followed_without_overflowing_fields() -> None:
    c = Craft()
    a, b = Entry(b"a/classic", b"1"), Entry(b"a/zip64", b"2")
    c.local(a)
    c.local(b)
    cd1 = c.central([a])
    cd2 = c.central([b])
    c.locator(c.eocd64(cd2, 1))
    c.eocd(cd1, 1)
    z = _zip(c.bytes())
    assert z.zip64 and [m.raw_name for m in z.members] == [b"a/zip64"]


def test_zip64_locator_pointing_elsewhere_is_an_anomaly() -> None:
    c = Craft()
    a, b = Entry(b"a/one", b"1"), Entry(b"a/two", b"2")
    c.local(a)
    c.local(b)
    cd1 = c.central([a])
    cd2 = c.central([b])
    first = c.eocd64(cd1, 1)
    c.eocd64(cd2, 1)  # the record zipfile reads (just before the locator)
    c.locator(first)
    c.eocd(cd1, 1)
    z = _zip(c.bytes())
    assert [m.raw_name for m in z.members] == [b"a/one"]
    assert any("ZIP64 locator" in a for a in z.anomalies)


def test_entry_count_not_directory_size_decides() -> None:
    c = Craft()
    es = [c.local(Entry(f"a/{i}".encode(), b"x")) for i in range(3)]
    cd = c.central(es)
    c.eocd(cd, 2)
    assert [m.raw_name for m in _zip(c.bytes()).members] == [b"a/0", b"a/1"]


def test_lookup_ignores_ascii_case_only() -> None:
    z = _zip(build([Entry(b"a/DATA.PKL", b"1"), Entry("a/Ä".encode(), b"2")]))
    found = z.locate("a/data.pkl")
    assert found is not None and found.raw_name == b"a/DATA.PKL"
    assert z.locate("a/ä") is None  # MZ_TOLOWER folds A-Z only


def test_lookup_stops_at_nul_like_a_c_string() -> None:
    z = _zip(build([Entry(b"a/x", b"1")]))
    assert z.locate(b"a/x\x00junk") is not None


def test_heap_sort_of_distinct_names_is_the_sorted_order() -> None:
    keys = [b"b", b"a", b"d", b"c", b"aa"]
    assert [keys[i] for i in _miniz_sort(keys)] == sorted(keys)


def test_heap_sort_places_duplicates_like_miniz() -> None:
    # Five equal names then a version record: miniz's heap sort + binary search land on entry #3,
    # neither the first nor the last (torch 2.14 loads copy 3 of this archive).
    names = [b"archive/data.pkl"] * 5 + [b"archive/version"]
    z = _zip(build([Entry(n, bytes([i])) for i, n in enumerate(names)]))
    pick = z.locate(b"archive/data.pkl")
    assert pick is not None and pick.index == 3


def test_stored_member_reads_the_declared_size_at_the_local_data_offset() -> None:
    e = Entry(b"a/x", b"payload", local_extra=b"\0" * 9)
    z = _zip(build([e]))
    assert extract(z, z.members[0], 1 << 20).data == b"payload"


def test_deflate_outcomes() -> None:
    data = value_pickle({"k": list(range(50))})
    longer = Entry(b"a/long", data, method=8, size=len(data) - 4)
    shorter = Entry(b"a/short", data, method=8, size=len(data) + 4)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    broken = Entry(b"a/broken", data + b"\0" * 50, method=8,
                   raw=co.compress(data) + co.flush(zlib.Z_FULL_FLUSH) + b"\xff" * 8)
    z = _zip(build([longer, shorter, broken]))
    got = {m.raw_name: extract(z, m, 1 << 20) for m in z.members}
    assert got[b"a/long"].data == data[:-4] and got[b"a/long"].error is None  # torch reads the first bytes
    assert got[b"a/short"].error == "unexpected decompressed size"  # torch raises
    rec = got[b"a/broken"]
    assert rec.uninitialized and rec.data == data and rec.error is None  # torch reads on into garbage


def test_directory_entry_extracts_nothing() -> None:
    z = _zip(build([Entry(b"a/x", b"123", external_attr=0x10)]))
    rec = extract(z, z.members[0], 1 << 20)
    assert rec.uninitialized and rec.data == b""


@pytest.mark.parametrize(("version", "refused"), [(b"3", False), (b" +3abc", False), (b"10", False),
                                                  (b"11", True), (b"0", True), (b"0x3", True), (b"x", True)])
def test_version_record_is_parsed_like_stoull(version: bytes, refused: bool) -> None:
    z = _zip(build([Entry(b"archive/data.pkl", value_pickle(1)), Entry(b"archive/version", version)]))
    assert (read_like_torch(z, 1 << 20).refuses is not None) is refused


def test_entries_outside_the_folder_are_refused_case_sensitively() -> None:
    z = _zip(build([Entry(b"archive/data.pkl", value_pickle(1)), *RECORDS, Entry(b"ARCHIVE/x", b"1")]))
    r = read_like_torch(z, 1 << 20)
    assert r.refuses is not None and "not in a subdirectory" in r.refuses


def test_corrupt_deflate_in_a_hidden_member_is_an_anomaly(tmp_path: Path) -> None:
    p = _file(tmp_path, build([Entry(b"archive/data.pkl", value_pickle({"a": 1})), *RECORDS,
                               Entry(b"archive/extra.pkl", b"x" * 64, method=8, raw=b"\xfe" * 30)]))
    inv = ckptlint.inspect(p)
    assert inv.structure == {"a": 1}
    assert any("extra.pkl" in a and "deflate" in a for a in inv.anomalies)


def test_deflate_bomb_stays_small(tmp_path: Path) -> None:
    # ~0.3 MB of deflate that inflates to 300 MB behind a tiny pickle: torch reads it all, the
    # parse needs 6 bytes; memory must not follow the declared size.
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = pickle.dumps({}, protocol=2)
    raw = co.compress(head) + b"".join(co.compress(b"\0" * (1 << 20)) for _ in range(300)) + co.flush()
    bomb = Entry(b"archive/data.pkl", b"", method=8, raw=raw, size=len(head) + 300 * (1 << 20), crc=0)
    p = _file(tmp_path, build([bomb, *RECORDS]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inv = ckptlint.inspect(p)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert inv.structure == {}
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"


def test_inflated_bytes_are_bounded_for_the_whole_file(tmp_path: Path) -> None:
    # eight members of 8 MB each: no single one is big, together they pass a 32 MB bound
    co_raw = zlib.compress(b"\0" * (8 << 20))[2:-4]
    hidden = [Entry(f"archive/h{i}.pkl".encode(), b"", method=8, raw=co_raw, size=8 << 20, crc=0) for i in range(8)]
    p = _file(tmp_path, build([Entry(b"archive/data.pkl", value_pickle({"a": 1})), *RECORDS, *hidden]))
    limits = Limits(max_inflated_bytes=32 << 20)
    try:
        inv = ckptlint.inspect(p, limits=limits)
    except CheckpointError as e:
        assert "max_inflated_bytes" in e.reason
    else:
        assert any(s.limit == "max_inflated_bytes" for s in inv.stops)


@pytest.mark.parametrize("utf8_flag", [0, 0x800])
def test_non_ascii_folder_is_no_disagreement(tmp_path: Path, utf8_flag: int) -> None:
    # zipfile decodes names as cp437 unless flag 0x800 says UTF-8; miniz compares bytes. Same
    # entries, same bytes: no anomaly either way.
    records = [Entry("modèle/version".encode(), b"3", flags=utf8_flag),
               Entry("modèle/byteorder".encode(), b"little", flags=utf8_flag)]
    p = _file(tmp_path, build([Entry("modèle/data.pkl".encode(), value_pickle({"a": 1}), flags=utf8_flag),
                               *records]))
    inv = ckptlint.inspect(p)
    assert inv.structure == {"a": 1} and inv.anomalies == ()


def test_entry_count_is_bounded_for_both_readers(tmp_path: Path) -> None:
    entries = [Entry(b"archive/data.pkl", value_pickle(1)), *RECORDS]
    entries += [Entry(f"archive/f{i}".encode(), b"") for i in range(40)]
    p = _file(tmp_path, build(entries))
    limits = Limits(max_zip_entries=10)
    from ckptlint.formats.pyzip import py_zip_view
    from ckptlint.limits import Budget

    with p.open("rb") as f:
        view = py_zip_view(f, p.stat().st_size, Budget(limits))
    assert view.error is not None and "max_zip_entries" in view.error and view.members == []
    with pytest.raises(CheckpointError, match="max_zip_entries"):
        ckptlint.inspect(p, limits=limits)
