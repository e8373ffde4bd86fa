"""A small zip reader that reads members the way torch's miniz reader does.

torch locates members through the central directory, then reads the data at
the local header's offset, skipping the local name and extra field; it does not
verify CRCs. Python's ``zipfile`` differs (it checks CRCs and rejects some
files torch loads), so we parse the structures ourselves and record where
they disagree, for the safety rules to judge.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Limits

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOC = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<4sHHHHHIIIHH")


@dataclass(frozen=True)
class ZipMember:
    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    raw_name: bytes


class ZipArchive:
    """Central directory of a zip file plus bounded member reads."""

    def __init__(self, f: BinaryIO, file_size: int, limits: Limits = DEFAULT_LIMITS) -> None:
        self.f = f
        self.file_size = file_size
        self.limits = limits
        self.bytes_read = 0
        self.anomalies: list[str] = []
        self.members: list[ZipMember] = self._central_directory()
        self.by_name: dict[str, ZipMember] = {}
        self.shadowed: list[ZipMember] = []
        """Earlier members hidden by a later one of the same name (torch reads the last)."""
        for m in self.members:
            if m.name in self.by_name:
                self.anomalies.append(f"duplicate zip member name {m.name!r}")
                self.shadowed.append(self.by_name[m.name])
            self.by_name[m.name] = m

    def _pread(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.file_size:
            raise FormatError(f"zip structure points outside the file (offset {offset}, {n} bytes)")
        self.f.seek(offset)
        data = self.f.read(n)
        self.bytes_read += len(data)
        if len(data) != n:
            raise FormatError("zip file shorter than its directory says")
        return data

    def _central_directory(self) -> list[ZipMember]:
        tail_len = min(self.file_size, 65535 + _EOCD.size)
        tail = self._pread(self.file_size - tail_len, tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or pos + _EOCD.size > len(tail):
            raise FormatError("zip end-of-central-directory record not found")
        eocd_off = self.file_size - tail_len + pos
        _, _, _, _, count, cd_size, cd_off, _ = _EOCD.unpack_from(tail, pos)
        if count == 0xFFFF or cd_off == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
            if eocd_off < _EOCD64_LOC.size:
                raise FormatError("zip64 locator missing")
            sig, _, eocd64_off, _ = _EOCD64_LOC.unpack(self._pread(eocd_off - _EOCD64_LOC.size, _EOCD64_LOC.size))
            if sig != b"PK\x06\x07":
                raise FormatError("zip64 locator missing")
            rec = _EOCD64.unpack(self._pread(eocd64_off, _EOCD64.size))
            if rec[0] != b"PK\x06\x06":
                raise FormatError("zip64 end-of-central-directory record not found")
            count, cd_size, cd_off = rec[7], rec[8], rec[9]
        if count > self.limits.max_zip_entries:
            raise FormatError(f"zip has {count} entries (limit {self.limits.max_zip_entries})")
        cd = self._pread(cd_off, cd_size)
        members: list[ZipMember] = []
        p = 0
        for _ in range(count):
            if p + _CDH.size > len(cd):
                raise FormatError("zip central directory truncated")
            (sig, _, _, flags, method, _, _, crc, csize, size, nlen, xlen, clen,
             _, _, _, hoff) = _CDH.unpack_from(cd, p)
            if sig != b"PK\x01\x02":
                raise FormatError("zip central directory entry has a bad signature")
            raw_name = cd[p + _CDH.size:p + _CDH.size + nlen]
            extra = cd[p + _CDH.size + nlen:p + _CDH.size + nlen + xlen]
            size, csize, hoff = _zip64_fields(extra, size, csize, hoff)
            p += _CDH.size + nlen + xlen + clen
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            if "\x00" in name:
                self.anomalies.append(f"zip member name with a NUL byte: {name!r}")
            members.append(ZipMember(name, method, flags, crc, csize, size, hoff, raw_name))
        return members

    def data_offset(self, m: ZipMember) -> int:
        """Where the member's bytes start (after its local header)."""
        lfh = self._pread(m.header_offset, _LFH.size)
        sig, _, flags, method, _, _, _, _, _, nlen, xlen = _LFH.unpack(lfh)
        if sig != b"PK\x03\x04":
            raise FormatError(f"zip member {m.name!r} has no local header")
        local_name = self._pread(m.header_offset + _LFH.size, nlen)
        if local_name != m.raw_name:
            self.anomalies.append(
                f"zip member {m.name!r}: local header names it {local_name.decode('utf-8', 'replace')!r}")
        if flags != m.flags or method != m.method:
            self.anomalies.append(f"zip member {m.name!r}: local and central headers differ in flags/method")
        return m.header_offset + _LFH.size + nlen + xlen

    def read(self, name: str, limit: int | None = None) -> bytes:
        return self.read_member(self.by_name[name], limit)

    def read_member(self, m: ZipMember, limit: int | None = None) -> bytes:
        name = m.name
        limit = self.limits.max_pickle_bytes if limit is None else limit
        if m.size > limit or m.compressed_size > self.limits.max_pickle_bytes:
            raise FormatError(f"zip member {name!r} is {m.size} bytes (limit {limit})")
        start = self.data_offset(m)
        raw = self._pread(start, m.compressed_size)
        if m.method == 0:
            return raw
        if m.method == 8:
            d = zlib.decompressobj(-15)
            out = d.decompress(raw, limit + 1)
            if len(out) > limit:
                raise FormatError(f"zip member {name!r} inflates past {limit} bytes")
            return out
        raise FormatError(f"zip member {name!r} uses unsupported compression method {m.method}")


def _zip64_fields(extra: bytes, size: int, csize: int, hoff: int) -> tuple[int, int, int]:
    p = 0
    while p + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, p)
        body = extra[p + 4:p + 4 + ln]
        if tag == 0x0001:
            q = 0
            vals = []
            while q + 8 <= len(body):
                vals.append(struct.unpack_from("<Q", body, q)[0])
                q += 8
            it = iter(vals)
            if size == 0xFFFFFFFF:
                size = next(it, size)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if hoff == 0xFFFFFFFF:
                hoff = next(it, hoff)
            break
        p += 4 + ln
    return size, csize, hoff
