"""The zip data model shared by the miniz reader (zipreader.py) and its extraction (zipextract.py).

Kept apart so extraction needs no import of the reader (no import cycle): the error strings
miniz reports, one directory entry, and the few archive fields extraction reads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from operator import itemgetter
from typing import NamedTuple, Protocol

from ..errors import ZipStructureError as ZipStructureError  # re-exported for zipextract and torchzip
from ..limits import Budget

# mz_zip_get_error_string, for the messages torch prints ("PytorchStreamReader failed …: <this>")
NOT_AN_ARCHIVE = "not a ZIP archive"
NO_CENTRAL_DIR = "failed finding central directory"
CORRUPTED = "invalid header or archive is corrupted"
MULTIDISK = "unsupported multidisk archive"
READ_FAILED = "file read failed"
TOO_MANY_FILES = "too many files"
CDIR_SIZE = "unsupported central directory size"
ENCRYPTION = "unsupported encryption"
METHOD = "unsupported method"
DECOMPRESSED_SIZE = "unexpected decompressed size"
NOT_FOUND = "file not found"
FEATURE = "unsupported feature"

_U32 = 0xFFFFFFFF

Reader = Callable[[int, int], bytes]
"""``read(offset, n)``: up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""


class ZipMember(NamedTuple):
    """One central directory entry, with the fields ``mz_zip_reader_file_stat`` reports.

    A named tuple, not a dataclass: archives hold one per tensor (100,000+), so each costs one
    small tuple, built in C; the decoded ``name`` is computed when asked, never stored."""

    index: int  # type: ignore[assignment]  # shadows tuple.index: the entry's index is what callers mean
    """Position in the central directory (what ``mz_zip_reader_get_filename(i)`` returns)."""
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    external_attr: int
    stat_error: str | None = None
    """``mz_zip_reader_file_stat`` fails on this entry (a malformed ZIP64 extra field)."""
    folded: bytes = b""
    """The name as miniz compares it (ASCII case folded; the same object as ``raw_name`` when equal)."""

    @property
    def name(self) -> str:
        return self.raw_name.decode("utf-8", "replace")

    @property
    def py_name(self) -> str:
        """The name as Python's zipfile decodes it (UTF-8 only with flag 0x800, else cp437; cut at NUL)."""
        return _py_decode(self.raw_name, self.flags)

    @property
    def is_directory(self) -> bool:
        """miniz extracts nothing for these: torch's buffer stays uninitialised."""
        return self.raw_name.endswith(b"/") or bool(self.external_attr & 0x10)


RAW_NAME: Callable[[ZipMember], bytes] = itemgetter(1)
"""``m.raw_name`` by position, in C (a named tuple's attribute is a descriptor call: 100,000s of entries)."""
HEADER_OFFSET: Callable[[ZipMember], int] = itemgetter(7)
"""``m.header_offset`` by position, in C."""


class LocalHeaders:
    """Each entry's local header as miniz meets it: where its data starts, and where it differs."""

    READ_FAILED = -1
    """Fewer than 30 bytes at the header offset."""
    BAD_SIGNATURE = -2
    """No ``PK\\x03\\x04`` there."""

    def __init__(self, n: int) -> None:
        self.data_offsets = memoryview(bytearray(8 * n)).cast("q")
        """Per entry index: local header offset + 30 + local name and extra lengths, or a code above (int64
        each, as an array("q") holds them, without importing array: startup)."""
        self.differs: dict[int, tuple[bytes, int, int]] = {}
        """Entry index -> (local name, flags, method), for the entries whose local header differs."""



class Archive(Protocol):
    """What extraction reads of an open archive (zipreader.ZipArchive is the one implementation)."""

    file_size: int
    budget: Budget
    members: list[ZipMember]

    def _read(self, offset: int, n: int) -> bytes: ...

    def known_data_offset(self, m: ZipMember) -> int | None: ...

    def known_local_header(self, m: ZipMember) -> tuple[bytes, int, int] | bool | None: ...


def _py_decode(raw: bytes, flags: int) -> str:
    # ASCII reads the same in UTF-8 and cp437: without the cp437 codec's lookup and import (startup)
    text = raw.decode("ascii") if raw.isascii() else raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
    return text.split("\x00", 1)[0]


def miniz_sort(keys: list[bytes]) -> list[int]:
    """miniz's heap sort of entry indices by case-folded name (not stable: equal names end up
    wherever the heap puts them, which decides the copy the binary search finds)."""
    n = len(keys)
    if n <= 1:
        return list(range(n))
    if len(set(keys)) == n:
        return sorted(range(n), key=keys.__getitem__)  # no ties: any correct sort gives the same order
    rank = {k: r for r, k in enumerate(sorted(set(keys)))}
    r = [rank[k] for k in keys]
    idx = list(range(n))

    def sift(root: int, end: int) -> None:
        while True:
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end and r[idx[child]] < r[idx[child + 1]]:
                child += 1
            if not r[idx[root]] < r[idx[child]]:
                return
            idx[root], idx[child] = idx[child], idx[root]
            root = child

    for start in range((n - 2) >> 1, -1, -1):
        sift(start, n)
    for end in range(n - 1, 0, -1):
        idx[end], idx[0] = idx[0], idx[end]
        sift(0, end)
    return idx


def patched_zip64(extra: bytes, c: int, d: int, o: int) -> tuple[int, int, int]:
    """PyTorch's patch to miniz's directory walk: find field 0x0001, then read the values that
    are 0xFFFFFFFF from there on, bounded by the bytes left in the *whole* extra field."""
    p, left = 0, len(extra)
    while left:
        if left < 4:
            raise ZipStructureError(CORRUPTED)
        fid, fsize = struct.unpack_from("<HH", extra, p)
        if fsize + 4 > left:
            raise ZipStructureError(CORRUPTED)
        if fid == 1:
            break
        p += 4 + fsize
        left -= 4 + fsize
    if left >= 4:
        left -= 4
        p += 4
        vals = []
        for cur in (d, c, o):
            if cur == _U32 and left >= 8:
                vals.append(struct.unpack_from("<Q", extra, p)[0])
                left -= 8
                p += 8
            else:
                vals.append(cur)
        d, c, o = vals
    return c, d, o


def stat_zip64(extra: bytes, size: int, csize: int, hoff: int) -> tuple[int, int, int]:
    """``mz_zip_file_stat_internal``: values inside field 0x0001 only; ValueError where miniz fails."""
    p, left = 0, len(extra)
    while left:
        if left < 4:
            raise ValueError
        fid, fsize = struct.unpack_from("<HH", extra, p)
        if fsize + 4 > left:
            raise ValueError
        if fid == 1:
            q, rem = p + 4, fsize
            vals = []
            for cur in (size, csize, hoff):
                if cur == _U32:
                    if rem < 8:
                        raise ValueError
                    vals.append(struct.unpack_from("<Q", extra, q)[0])
                    q += 8
                    rem -= 8
                else:
                    vals.append(cur)
            return vals[0], vals[1], vals[2]
        p += 4 + fsize
        left -= 4 + fsize
    return size, csize, hoff
