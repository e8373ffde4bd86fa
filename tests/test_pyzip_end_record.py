"""``plain_end_record`` is ``zipfile._EndRecData`` wherever it answers, and answers for torch.save's layout.

It exists so a small check need not import zipfile (start-up cost); CPython's function is the oracle, run
on the fuzzer's zip family, on crafted tails (comments, ZIP64 locators on other disks, records cut short,
files smaller than the records) and on random rewrites of the last 120 bytes of a torch.save file.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from types import ModuleType
from typing import Any

import pytest

from ckptlint.formats import pyzip
from ckptlint.formats.pyzip import plain_end_record
from fuzz.generate import generate
from fuzz.zipbuild import EOCD, EOCD64, LOCATOR64, Member, build, eocd, eocd64, locator64


def _zipfile(data: bytes) -> Any:
    try:
        return zipfile._EndRecData(io.BytesIO(data))  # type: ignore[attr-defined]
    except Exception as e:  # noqa: BLE001 - the oracle's refusal is an answer too
        return type(e)


def _agrees(data: bytes) -> bool:
    """Whether it answered (True) — and, if it did, that its answer is zipfile's (else the assert fails)."""
    mine = plain_end_record(io.BytesIO(data))
    if mine is not None:
        assert mine == _zipfile(data), data[-120:]
    return mine is not None


def test_the_layout_constants_are_zipfiles() -> None:
    z: Any = zipfile
    assert (pyzip._END.format, pyzip._LOCATOR64.format, pyzip._END64.format) == tuple(
        s if isinstance(s, str) else s.decode() for s in (z.structEndArchive, z.structEndArchive64Locator,
                                                          z.structEndArchive64))
    signatures = (pyzip._END_SIG, pyzip._LOCATOR64_SIG, pyzip._END64_SIG)
    assert signatures == (z.stringEndArchive, z.stringEndArchive64Locator, z.stringEndArchive64)
    assert (pyzip._ECD_SIGNATURE, pyzip._ECD_SIZE, pyzip._ECD_OFFSET, pyzip._ECD_LOCATION) == (
        z._ECD_SIGNATURE, z._ECD_SIZE, z._ECD_OFFSET, z._ECD_LOCATION)
    assert pyzip.MAX_EXTRACT_VERSION == z.MAX_EXTRACT_VERSION
    built = (EOCD, EOCD64, LOCATOR64)  # what the crafted tails below are made of
    assert built == (z.stringEndArchive, z.stringEndArchive64, z.stringEndArchive64Locator)


def test_torch_save_files_are_answered_as_zipfile_answers(torch: ModuleType) -> None:
    for sd in ({}, {"w": torch.zeros(2)}, {f"l{i}.weight": torch.ones(i + 1) for i in range(50)}):
        buf = io.BytesIO()
        torch.save(sd, buf)
        assert _agrees(buf.getvalue())


def _crafted() -> dict[str, bytes]:
    members = [Member(b"archive/data.pkl", b"\x80\x02}q\x00."), Member(b"archive/version", b"3\n")]
    plain = build(members)
    body = plain[:plain.index(b"PK\x05\x06")]
    cd = body.index(b"PK\x01\x02")
    cd_size = len(body) - cd
    z64 = body + eocd64(2, cd_size, cd) + locator64(len(body)) + eocd(2, cd_size, cd)
    return {
        "no ZIP64": plain,
        "ZIP64, torch.save's layout": z64,
        "a comment": body + eocd(2, cd_size, cd, b"hello"),
        "a declared comment that is not there": body + eocd(2, cd_size, cd, comment_len=5),
        "locator on disk 1": z64[:-42] + LOCATOR64 + struct.pack("<IQI", 1, len(body), 1) + z64[-22:],
        "locator counting 2 disks": z64[:-42] + LOCATOR64 + struct.pack("<IQI", 0, len(body), 2) + z64[-22:],
        "locator with no ZIP64 record before it": body + locator64(len(body)) + eocd(2, cd_size, cd),
        "a ZIP64 record with another signature": z64[:-98] + b"PK\x06\x08" + z64[-94:],
        "the end record alone": eocd(0, 0, 0),
        "a locator and an end record alone": locator64(0) + eocd(0, 0, 0),
        "a file shorter than an end record": b"PK\x05\x06\x00",
        "empty": b"",
        "trailing garbage after the end record": plain + b"\x00",
    }


@pytest.mark.parametrize("name", list(_crafted()))
def test_crafted_tails(name: str) -> None:
    answered = _agrees(_crafted()[name])
    assert answered == (name in {"no ZIP64", "ZIP64, torch.save's layout", "locator with no ZIP64 record before it",
                                 "a ZIP64 record with another signature", "the end record alone"})
    # "a locator and an end record alone": zipfile's seek to a ZIP64 record before the file's start raises


def test_the_fuzzers_zips_and_rewritten_tails(torch: ModuleType) -> None:
    rng = random.Random(14)
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3), "b": torch.ones(2)}, buf)
    base = buf.getvalue()
    inputs = [generate(19, i, families=["zip"])[0] for i in range(200)]
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[len(data) - rng.randint(1, 120)] = rng.choice((0, 1, 2, 0x50, 0x4B, 5, 6, 7, 0xFF, rng.randrange(256)))
        cut = rng.random()
        inputs.append(bytes(data[:len(data) - rng.randint(1, 100)] if cut < 0.1 else data))
    answered = sum(_agrees(d) for d in inputs)
    assert answered > len(inputs) // 10  # the shortcut is taken often, and every time it matches zipfile
