"""A deflated data.pkl whose stream ends before its declared size: miniz fails silently and torch
unpickles the inflated bytes followed by memory nothing wrote (fuzz seed 402 index 1906: the
oracle met a global spelled by that memory). What torch reads there is unknowable, so the file is
a report naming the uninitialised read, not "unreadable"."""

from __future__ import annotations

import zlib
from pathlib import Path
from types import ModuleType

import ckptlint
from ckptlint.checker import check_file

from zipcraft import Entry, build, entries_of, torch_members


def test_truncated_deflate_data_pkl_is_reported_with_the_uninitialised_read(
        torch: ModuleType, tmp_path: Path) -> None:
    body = b"ccollections\nOrderedDict\n)R."
    cut = body[:20]  # inflates to 20 of the 29 declared bytes: the GLOBAL's name line is left open
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = d.compress(cut) + d.flush(zlib.Z_SYNC_FLUSH)  # no final block: the stream just stops
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "cut.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", body, method=8, raw=raw, size=len(body)), *rest]))
    inv = ckptlint.inspect(p)  # was CheckpointError: pickle truncated at byte 0
    assert any("uninitialised memory" in a for a in inv.anomalies)
    assert inv.stops and inv.stops[0].stream == "archive/data.pkl"
    fr = check_file(p)
    assert fr.error is None
    assert any(f.code == "CK107" and "uninitialised memory" in f.message for f in fr.findings)


def _cut_deflate(body: bytes, keep: int) -> bytes:
    """A raw deflate stream that inflates to ``body[:keep]`` and then just stops (no final block)."""
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    return d.compress(body[:keep]) + d.flush(zlib.Z_SYNC_FLUSH)


def _with_record(record: bytes, body: bytes, keep: int) -> bytes:
    """torch.save's members for a plain dict, ``record`` replaced by a deflated copy cut after ``keep`` bytes."""
    members = torch_members({"x": 0})
    rest = [e for e in entries_of(members) if not e.name.endswith(record)]
    cut = Entry(b"archive/" + record, body, method=8, raw=_cut_deflate(body, keep), size=len(body))
    return build([*rest, cut])


def test_serialization_id_of_uninitialised_memory_is_a_definite_no(torch: ModuleType, tmp_path: Path) -> None:
    """fuzz seed 1 index 10781: torch decodes the id (inflated bytes + the memory after them) as UTF-8
    after unpickling; recycled heap memory is seldom UTF-8, so torch raises UnicodeDecodeError."""
    p = tmp_path / "sid.pt"
    p.write_bytes(_with_record(b".data/serialization_id", b"1" * 40, 0))
    fr = check_file(p)
    assert fr.inventory is not None and fr.inventory.facts.loaded_streams == ("archive/data.pkl",)
    refuses = fr.inventory.facts.extra["torch_refuses"]
    assert "UnicodeDecodeError" in refuses and "serialization_id" in refuses
    assert fr.verdict is not None and fr.verdict.loads is False  # was True


def test_serialization_id_whose_inflated_part_is_not_utf8_fails_deterministically(torch: ModuleType,
                                                                                  tmp_path: Path) -> None:
    p = tmp_path / "sid.pt"
    p.write_bytes(_with_record(b".data/serialization_id", b"\xff\xfe" + b"1" * 38, 2))
    fr = check_file(p)
    assert fr.inventory is not None
    refuses = fr.inventory.facts.extra["torch_refuses"]
    assert refuses.startswith("UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff")
    assert fr.verdict is not None and fr.verdict.loads is False


def test_storage_alignment_followed_by_uninitialised_memory_is_refused(torch: ModuleType, tmp_path: Path) -> None:
    """fuzz seed 1 index 5861: ``int(b"7" + <memory>)`` raises unless that memory is digits or whitespace;
    torch raises before unpickling, so no stream is loaded."""
    p = tmp_path / "align.pt"
    p.write_bytes(_with_record(b".storage_alignment", b"64", 1))
    fr = check_file(p)
    assert fr.inventory is not None and fr.inventory.facts.loaded_streams == ()  # was ('archive/data.pkl',)
    assert "invalid literal for int()" in fr.inventory.facts.extra["torch_refuses"]
    assert fr.verdict is not None and fr.verdict.loads is False
    # by luck (digits in that memory) torch would go on to data.pkl: the readers may disagree
    assert any(f.code == "CK107" and ".storage_alignment" in f.message for f in fr.findings)


def test_byteorder_followed_by_uninitialised_memory_is_refused(torch: ModuleType, tmp_path: Path) -> None:
    """A 7-byte byteorder record whose deflate stream stops after ``little``: the 7 bytes torch compares
    are never ``little`` or ``big``."""
    p = tmp_path / "order.pt"
    p.write_bytes(_with_record(b"byteorder", b"little\n", 6))
    fr = check_file(p)
    assert fr.inventory is not None and fr.inventory.facts.loaded_streams == ()
    assert "Unknown endianness type" in fr.inventory.facts.extra["torch_refuses"]
    assert fr.verdict is not None and fr.verdict.loads is False


def test_data_pkl_with_nothing_inflated_is_a_possible_disagreement(torch: ModuleType, tmp_path: Path) -> None:
    """fuzz seed 11 index 25003: the deflate stream of data.pkl stops before its first byte. torch unpickles 538
    bytes of memory nothing wrote (recycled memory may hold an earlier pickle): CK107, and a definite no."""
    body = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01."
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "empty.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", body, method=8, raw=_cut_deflate(body, 0), size=len(body)),
                         *rest]))
    fr = check_file(p)
    assert fr.error is None and fr.inventory is not None and fr.inventory.facts.loaded_streams == ()
    assert any(f.code == "CK107" and "uninitialised memory" in f.message for f in fr.findings)  # was a note only
    assert fr.verdict is not None and fr.verdict.loads is False


def test_cut_data_pkl_among_duplicates_names_its_stream(torch: ModuleType, tmp_path: Path) -> None:
    """fuzz seed 1 index 48425: two ``archive/data.pkl`` entries; the one miniz reads is a cut deflate stream whose
    pickle stops inside memory nothing wrote. Its stream is labelled ``archive/data.pkl@0``; the note about the
    uninitialised read must carry that label, so the file is a report with CK107, not unreadable."""
    body = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02K\x02u."
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "dup.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", b"\x80\x02}q\x00."), *rest,
                         Entry(b"archive/data.pkl", body, method=8, raw=_cut_deflate(body, 20), size=len(body))]))
    fr = check_file(p)
    assert fr.error is None and fr.inventory is not None  # was unreadable: "pickle truncated at byte 20"
    [label] = fr.inventory.facts.loaded_streams
    assert label.startswith("archive/data.pkl@") and label != "archive/data.pkl@0"  # miniz's pick: the cut one
    assert any(f.code == "CK107" and f.message.startswith(f"readers may disagree about this file: {label} ")
               and "uninitialised memory" in f.message for f in fr.findings)
    assert fr.verdict is not None and fr.verdict.loads is False
