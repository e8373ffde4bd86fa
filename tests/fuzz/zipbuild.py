"""A zip writer that can lie: every header field, both directories, ZIP64 records and the EOCD are ours to set.

CPython's zipfile cannot write duplicate names without warnings, mismatched local and
central headers, two central directories or a ZIP64 record that points elsewhere; the
fuzzer needs all of those, so it writes the bytes itself (APPNOTE 6.3.10 layouts).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
EOCD = b"PK\x05\x06"
EOCD64 = b"PK\x06\x06"
LOCATOR64 = b"PK\x06\x07"


@dataclass
class Member:
    name: bytes
    data: bytes
    method: int = 0
    """0 stored, 8 deflated."""
    local_name: bytes | None = None
    """A different name in the local header (a local/central mismatch)."""
    local_method: int | None = None
    crc: int | None = None
    csize: int | None = None
    """Compressed size written in the central directory (and local header) when not the real one."""
    local_csize: int | None = None
    usize: int | None = None
    zip64: bool = False
    """Write sizes and offset as 0xFFFFFFFF with a ZIP64 extra field."""
    flags: int = 0
    local_extra: bytes = b""
    raw: bytes | None = None
    """The member's stored bytes, verbatim (a corrupt deflate stream)."""
    descriptor: bool = False
    """Flag bit 3: zero CRC and sizes in the local header, a data descriptor after the data."""
    offset: int = field(default=0, init=False)

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            return c.compress(self.data) + c.flush()
        return self.data


def _local(m: Member, body: bytes) -> bytes:
    name = m.local_name if m.local_name is not None else m.name
    method = m.local_method if m.local_method is not None else m.method
    crc = m.crc if m.crc is not None else zlib.crc32(m.data)
    csize = m.local_csize if m.local_csize is not None else (m.csize if m.csize is not None else len(body))
    usize = m.usize if m.usize is not None else len(m.data)
    extra = m.local_extra
    flags = m.flags | (8 if m.descriptor else 0)
    if m.descriptor:
        crc = csize = usize = 0
    if m.zip64:
        extra = struct.pack("<HHQQ", 1, 16, usize, csize) + extra
        csize = usize = 0xFFFFFFFF
    return LOCAL + struct.pack("<HHHHHIIIHH", 45 if m.zip64 else 20, flags, method, 0, 0x21, crc & 0xFFFFFFFF,
                               csize & 0xFFFFFFFF, usize & 0xFFFFFFFF, len(name), len(extra)) + name + extra


def _central(m: Member, body: bytes) -> bytes:
    crc = m.crc if m.crc is not None else zlib.crc32(m.data)
    csize = m.csize if m.csize is not None else len(body)
    usize = m.usize if m.usize is not None else len(m.data)
    offset = m.offset
    extra = b""
    if m.zip64:
        extra = struct.pack("<HHQQQ", 1, 24, usize, csize, offset)
        csize = usize = offset = 0xFFFFFFFF
    flags = m.flags | (8 if m.descriptor else 0)
    return CENTRAL + struct.pack("<HHHHHHIIIHHHHHII", 0x31E, 45 if m.zip64 else 20, flags, m.method, 0, 0x21,
                                 crc & 0xFFFFFFFF, csize & 0xFFFFFFFF, usize & 0xFFFFFFFF, len(m.name), len(extra),
                                 0, 0, 0, 0, offset & 0xFFFFFFFF) + m.name + extra


def eocd(entries: int, cd_size: int, cd_offset: int, comment: bytes = b"", comment_len: int | None = None) -> bytes:
    n = len(comment) if comment_len is None else comment_len
    return EOCD + struct.pack("<HHHHIIH", 0, 0, entries & 0xFFFF, entries & 0xFFFF, cd_size & 0xFFFFFFFF,
                              cd_offset & 0xFFFFFFFF, n & 0xFFFF) + comment


def eocd64(entries: int, cd_size: int, cd_offset: int) -> bytes:
    return EOCD64 + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)


def locator64(offset: int) -> bytes:
    return LOCATOR64 + struct.pack("<IQI", 0, offset, 1)


@dataclass
class Layout:
    """How the archive ends: the knobs an attacker turns around the directories."""

    prefix: bytes = b""
    central_order: list[int] | None = None
    """Indices into the members for the central directory (default: file order, all)."""
    second_central: list[int] | None = None
    """A second central directory, which a ZIP64 record points at (the classic EOCD keeps the first)."""
    zip64_eocd: bool = False
    comment: bytes = b""
    comment_len: int | None = None
    trailing: bytes = b""
    classic_overflow: bool = False
    """Write 0xFFFF/0xFFFFFFFF in the classic EOCD, as a real ZIP64 writer does."""
    offsets_relative_to_prefix: bool = False


def build(members: list[Member], layout: Layout | None = None) -> bytes:
    lay = layout or Layout()
    out = bytearray(lay.prefix)
    base = 0 if lay.offsets_relative_to_prefix else len(lay.prefix)
    bodies = []
    for m in members:
        body = m.payload()
        bodies.append(body)
        m.offset = len(out) - len(lay.prefix) + base
        out += _local(m, body) + body
        if m.descriptor:
            out += b"PK\x07\x08" + struct.pack("<III", (m.crc if m.crc is not None else zlib.crc32(m.data))
                                                 & 0xFFFFFFFF, len(body), len(m.data))
    order = lay.central_order if lay.central_order is not None else list(range(len(members)))
    cd_offset = len(out) - len(lay.prefix) + base
    cd = b"".join(_central(members[i], bodies[i]) for i in order)
    out += cd
    entries, size, offset = len(order), len(cd), cd_offset
    if lay.second_central is not None:
        offset2 = len(out) - len(lay.prefix) + base
        cd2 = b"".join(_central(members[i], bodies[i]) for i in lay.second_central)
        out += cd2
        entries2, size2 = len(lay.second_central), len(cd2)
    else:
        entries2, size2, offset2 = entries, size, offset
    if lay.zip64_eocd or lay.second_central is not None:
        rec = len(out) - len(lay.prefix) + base
        out += eocd64(entries2, size2, offset2) + locator64(rec)
    if lay.classic_overflow:
        entries, size, offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    out += eocd(entries, size, offset, lay.comment, lay.comment_len) + lay.trailing
    return bytes(out)
