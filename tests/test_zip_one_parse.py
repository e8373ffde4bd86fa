"""One parse of a zip's central directory serves every reader, and each reader sees what it saw before.

Checked on the fuzzer's zip family (tests/fuzz/gen_zip.py: torch.save layouts, mutated headers, ZIP64
records, duplicate and odd names, prepended data …), against the real thing each shortcut replaces:

- where zipfile's listing is taken from miniz's parse (``PyZipView.same_as``), CPython's own
  ``zipfile.ZipFile`` lists exactly those entries (names, offsets, sizes, method, CRC; name lookups);
- the local-header scan finds, for every entry, what reading that entry's header alone finds;
- a view of the shared parse leaves the caller's budget, and raises, exactly as a parse of its own.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from ckptlint.errors import FormatError
from ckptlint.formats.common import CountingFile
from ckptlint.formats.pyzip import Listed, py_zip_view
from ckptlint.formats.zipextract import data_offset, local_header
from ckptlint.formats.zipreader import ZipArchive, ZipStructureError, open_archive, parsed_archive
from ckptlint.limits import DEFAULT_LIMITS, Budget, Limits
from fuzz.generate import generate
from fuzz.zipbuild import Member, build, eocd, eocd64, locator64

INPUTS = 300


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> list[Path]:
    """The fuzzer's zip family (its valid starting points are torch.save outputs: torch is needed)."""
    d = tmp_path_factory.mktemp("zips")
    out = []
    for i in range(INPUTS):
        data, _, _ = generate(17, i, families=["zip"])
        p = d / f"{i}.pt"
        p.write_bytes(data)
        out.append(p)
    return out


def _torch_like(*odd: Member) -> list[Member]:
    return [Member(b"archive/data.pkl", b"\x80\x02}q\x00."), *odd, Member(b"archive/version", b"3\n")]


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


def _crafted() -> dict[str, bytes]:
    """Archives miniz opens where zipfile lists other entries, or other names, or refuses."""
    plain = build(_torch_like(Member(b"archive/data/0", b"abcd")))
    cd = plain.index(b"PK\x01\x02")
    needed = cd + 6  # the first central header's "version needed to extract"
    members = _torch_like(Member(b"archive/data/0", b"abcd"))
    body = build(members)  # sets each member's offset
    data_end = body.index(b"PK\x01\x02")
    cd_all = body[data_end:body.index(b"PK\x05\x06")]
    cd_first = cd_all[:46 + len(members[0].name)]  # the first entry's central header alone
    elsewhere = data_end + len(cd_first)  # a ZIP64 record for that one-entry directory, right after it
    head = body[:data_end] + cd_first + eocd64(1, len(cd_first), data_end)
    own = len(head) + len(cd_all)  # the ZIP64 record zipfile reads: just before the locator
    two_records = (head + cd_all + eocd64(len(members), len(cd_all), len(head)) + locator64(elsewhere)
                   + eocd(len(members), len(cd_all), len(head)))
    assert own + 56 + 20 + 22 == len(two_records)
    return {
        "bytes between the directory and the end record (zipfile shifts its offsets)": _patched(
            plain, b"PK\x05\x06", b"\x00" * 16 + b"PK\x05\x06"),
        "a ZIP64 locator pointing at another record (another directory for miniz)": two_records,
        "NUL in a name (zipfile cuts it)": build(_torch_like(Member(b"archive/data/0\x00.exe", b"abcd"))),
        "UTF-8 name, no UTF-8 flag (zipfile reads cp437)": build(_torch_like(Member(b"archive/d\xc3\xa9", b"x"))),
        "count below the directory's size (zipfile lists one more)": _patched(
            plain, b"PK\x05\x06\x00\x00\x00\x00\x03\x00\x03\x00", b"PK\x05\x06\x00\x00\x00\x00\x02\x00\x02\x00"),
        "a version zipfile refuses": plain[:needed] + b"\x40\x00" + plain[needed + 2:],
    }


def _zipfile_listing(f: CountingFile) -> tuple[list[tuple[str, int, int, int, int, int]], dict[str, int]]:
    zf = zipfile.ZipFile(f.f)
    infos = zf.infolist()
    return ([(i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC) for i in infos],
            {name: i.header_offset for name, i in zf.NameToInfo.items()})


def _view_and_zipfile(p: Path) -> tuple[bool, bool, bool]:
    """(the listing was taken from miniz's parse, zipfile's own listing is miniz's parse, the view answers
    as zipfile does: its entries and every name lookup)."""
    f = CountingFile(str(p))
    try:
        miniz = parsed_archive(f, DEFAULT_LIMITS)
        view = py_zip_view(f.f, f.size, Budget(DEFAULT_LIMITS), miniz)
        try:
            listing, by_name = _zipfile_listing(f)
        except (zipfile.BadZipFile, NotImplementedError):
            return view.same_as is not None, False, view.same_as is None and view.error is not None

        def entries(ms: Sequence[Listed]) -> list[tuple[str, int, int, int, int, int]]:
            return [(m.name, m.header_offset, m.compressed_size, m.size, m.method, m.crc) for m in ms]

        answers = entries(view.members) == listing and view.get("no such entry") is None and all(
            (found := view.get(name)) is not None and found.header_offset == offset for name, offset in by_name.items())
        return view.same_as is not None, miniz is not None and entries(miniz.members) == listing, answers
    finally:
        f.close()


def test_zipfile_listing_is_miniz_parse_only_where_they_coincide(tmp_path: Path) -> None:
    """torch.save's layout is taken from miniz's parse, and is zipfile's listing; archives miniz reads
    but zipfile lists differently (or refuses) are listed by zipfile itself."""
    plain = tmp_path / "plain.pt"
    plain.write_bytes(build(_torch_like(Member(b"archive/data/0", b"abcd"), Member(b"archive/data/1", b"ef"))))
    assert _view_and_zipfile(plain) == (True, True, True)
    for why, data in _crafted().items():
        p = tmp_path / "odd.pt"
        p.write_bytes(data)
        f = CountingFile(str(p))
        try:
            assert parsed_archive(f, DEFAULT_LIMITS) is not None, why  # miniz reads it
        finally:
            f.close()
        taken, zipfile_lists_the_same, answers = _view_and_zipfile(p)
        assert not zipfile_lists_the_same, why  # taking miniz's parse would be wrong here ...
        assert not taken and answers, why  # ... and it is not taken: the view says what zipfile says


def test_zipfile_listing_taken_from_miniz_is_zipfiles_own(archives: list[Path]) -> None:
    mirrored = refused = 0
    for p in archives:
        taken, zipfile_lists_the_same, answers = _view_and_zipfile(p)
        assert answers, p  # the view answers as zipfile does, however it was made
        if taken:
            mirrored += 1
            assert zipfile_lists_the_same, p
        else:
            refused += 1
    assert mirrored >= 20 and refused >= 20, (mirrored, refused)  # both branches ran


def _header_reads(z: ZipArchive) -> list[tuple[object, object]]:
    out: list[tuple[object, object]] = []
    for m in z.members:
        try:
            start: object = data_offset(z, m)
        except ZipStructureError as e:
            start = e.mz_error
        out.append((start, local_header(z, m)))
    return out


def test_local_header_scan_finds_what_each_read_finds(archives: list[Path]) -> None:
    scanned = 0
    for p in archives:
        f = CountingFile(str(p))
        try:
            try:
                one_by_one = ZipArchive(f.pread, f.size)
            except FormatError:
                continue
            expected = _header_reads(one_by_one)
            z = ZipArchive(f.pread, f.size)
            z.local_headers()
            reads = f.bytes_read
            assert _header_reads(z) == expected, p
            assert f.bytes_read == reads  # answered from the scan, nothing read again
            scanned += 1
        finally:
            f.close()
    assert scanned >= 100


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, dataclasses.replace(DEFAULT_LIMITS, max_zip_entries=3),
                                    dataclasses.replace(DEFAULT_LIMITS, max_inflated_bytes=300)])
def test_a_view_charges_and_raises_as_a_parse_of_its_own(archives: list[Path], limits: Limits) -> None:
    outcomes: set[str] = set()
    for p in archives:
        f, g = CountingFile(str(p), limits), CountingFile(str(p), limits)
        try:
            own = Budget(limits)
            own.charge_members(1)  # whatever the caller charged before
            try:
                z = ZipArchive(f.pread, f.size, limits, own)
                expected: tuple[str, object, tuple[str, ...]] = ("ok", len(z.members), tuple(z.anomalies))
            except FormatError as e:
                expected = (type(e).__name__, str(e), ())
            with pytest.raises(FormatError) if expected[0] != "ok" else _nothing():
                open_archive(g, limits, Budget(limits))  # a first reader: the parse is made and kept
            shared = Budget(limits)
            shared.charge_members(1)
            try:
                v = open_archive(g, limits, shared)
                got: tuple[str, object, tuple[str, ...]] = ("ok", len(v.members), tuple(v.anomalies))
            except FormatError as e:
                got = (type(e).__name__, str(e), ())
            assert got == expected, p
            assert (shared.members, shared.inflated_bytes) == (own.members, own.inflated_bytes), p
            outcomes.add(expected[0])
        finally:
            f.close()
            g.close()
    assert "ok" in outcomes and len(outcomes) > 1, outcomes


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
