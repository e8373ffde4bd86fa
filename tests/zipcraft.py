"""Build zip archives byte by byte, the way an attacker would, for the zip reader tests.

``zipfile`` cannot write duplicate names with different cases of tampering, a
second central directory behind a ZIP64 locator, local/central header
mismatches or corrupt deflate streams; this small writer can. Used by
tests/test_zip_*.py and tests/differential/test_zip_vs_torch.py.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

LFH = struct.Struct("<4sHHHHHIIIHH")
CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<4sHHHHIIH")
EOCD64 = struct.Struct("<4sQHHIIQQQQ")
LOC64 = struct.Struct("<4sIQI")


@dataclass
class Entry:
    """One member; every header field can be overridden to disagree with the data."""

    name: bytes
    data: bytes
    method: int = 0
    raw: bytes | None = None
    """Bytes stored as the member's data (default: ``data``, deflated when ``method`` is 8)."""
    local_name: bytes | None = None
    flags: int = 0
    local_flags: int | None = None
    local_method: int | None = None
    crc: int | None = None
    size: int | None = None
    csize: int | None = None
    extra: bytes = b""
    local_extra: bytes = b""
    external_attr: int = 0
    zip64: bool = False
    """Write sizes and offset as 0xFFFFFFFF with a ZIP64 extra field in the central header."""
    zip64_values: int = 3
    """How many of the three 8-byte values that field holds (fewer: a malformed field)."""
    offset: int = field(default=-1, init=False)

    def stored(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            return c.compress(self.data) + c.flush()
        return self.data


class Craft:
    """Append records one after another; offsets are remembered on the entries."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.buf = bytearray(prefix)

    def local(self, e: Entry) -> Entry:
        e.offset = len(self.buf)
        body = e.stored()
        name = e.name if e.local_name is None else e.local_name
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        size = len(e.data) if e.size is None else e.size
        csize = len(body) if e.csize is None else e.csize
        method = e.method if e.local_method is None else e.local_method
        flags = e.flags if e.local_flags is None else e.local_flags
        self.buf += LFH.pack(b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, csize & 0xFFFFFFFF,
                             size & 0xFFFFFFFF, len(name), len(e.local_extra))
        self.buf += name + e.local_extra + body
        return e

    def central(self, entries: list[Entry]) -> tuple[int, int]:
        start = len(self.buf)
        for e in entries:
            body = e.stored()
            crc = zlib.crc32(e.data) if e.crc is None else e.crc
            size = len(e.data) if e.size is None else e.size
            csize = len(body) if e.csize is None else e.csize
            off = e.offset
            extra = e.extra
            if e.zip64:
                values = (size, csize, off)[:e.zip64_values]
                extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) + extra
                size = csize = off = 0xFFFFFFFF
            self.buf += CDH.pack(b"PK\x01\x02", 20, 20, e.flags, e.method, 0, 0x21, crc, csize, size,
                                 len(e.name), len(extra), 0, 0, 0, e.external_attr, off)
            self.buf += e.name + extra
        return start, len(self.buf) - start

    def eocd64(self, cd: tuple[int, int], count: int) -> int:
        start = len(self.buf)
        self.buf += EOCD64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd[1], cd[0])
        return start

    def locator(self, eocd64_offset: int, disks: int = 1) -> None:
        self.buf += LOC64.pack(b"PK\x06\x07", 0, eocd64_offset, disks)

    def eocd(self, cd: tuple[int, int], count: int, comment: bytes = b"", comment_len: int | None = None) -> None:
        n = len(comment) if comment_len is None else comment_len
        self.buf += EOCD.pack(b"PK\x05\x06", 0, 0, count, count, cd[1] & 0xFFFFFFFF, cd[0] & 0xFFFFFFFF, n)
        self.buf += comment

    def raw(self, b: bytes) -> None:
        self.buf += b

    def bytes(self) -> bytes:
        return bytes(self.buf)


def build(entries: list[Entry], *, order: list[int] | None = None, comment: bytes = b"", trailing: bytes = b"",
          zip64: bool = False) -> bytes:
    """A whole archive: locals in list order, the central directory in ``order``."""
    c = Craft()
    for e in entries:
        c.local(e)
    listed = [entries[i] for i in order] if order is not None else entries
    cd = c.central(listed)
    if zip64:
        c.locator(c.eocd64(cd, len(listed)))
    c.eocd(cd, len(listed), comment)
    c.raw(trailing)
    return c.bytes()


def torch_members(obj: object | None = None, prefix: str = "archive") -> list[tuple[str, bytes]]:
    """The members torch.save writes for ``obj`` (default: one small tensor), renamed under ``prefix``."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.arange(4.0)} if obj is None else obj, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = []
    for i in z.infolist():
        rest = i.filename.split("/", 1)[1]
        out.append((f"{prefix}/{rest}", z.read(i)))
    return out


def entries_of(members: list[tuple[str, bytes]], method: int = 0) -> list[Entry]:
    return [Entry(n.encode(), d, method=method) for n, d in members]


def value_pickle(value: object) -> bytes:
    """A pickle of a plain value (what a decoy or a marker copy of data.pkl holds)."""
    return pickle.dumps(value, protocol=2)


def marker_pickle(marker: str) -> bytes:
    """A payload that only creates ``marker``: ``builtins.open(marker, 'w')`` (harmless, provable)."""
    m = marker.encode()
    return (b"\x80\x02cbuiltins\nopen\nX" + struct.pack("<I", len(m)) + m + b"X\x01\x00\x00\x00w\x86R.")
