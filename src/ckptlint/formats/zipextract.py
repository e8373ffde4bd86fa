"""What ``PyTorchStreamReader::getRecord`` hands back for one entry: miniz's extract, failures included.

``mz_zip_reader_extract_to_mem`` fills a buffer of exactly the central header's
uncompressed size. Its outcomes, mirrored here:

- directory entries (name ends in ``/`` or DOS attribute 0x10) and entries with a
  compressed size of 0 extract *nothing* and report success: torch reads
  uninitialised memory;
- encrypted or patch entries, methods other than stored/deflate, a missing local
  header or data past the end of the file: an error torch raises;
- stored: ``size`` bytes at the data offset (not ``compressed_size``);
- deflate: a stream that ends early is an error ("unexpected decompressed
  size"); one that would write more than ``size`` bytes fills the buffer and
  stops *without* an error (torch reads the first ``size`` bytes); a corrupt or
  truncated stream also fails *without* an error, so torch reads what was
  inflated so far followed by uninitialised memory.

Inflated bytes are charged to the file's Budget as they are produced, so no
member, and no number of members, can inflate past ``max_inflated_bytes``.
"""

from __future__ import annotations

import struct
import zlib

from ..errors import LimitExceeded
from . import zipmember as zr

_CHUNK = 1 << 16
_LFH = struct.Struct("<HH16xHH")
"""Local header fields after the signature and version: flags, method, name and extra lengths."""


class Extracted:
    """What torch reads from one zip member, or why it cannot.

    A plain class, not a dataclass: every zip check uses it, and creating a dataclass costs start-up."""

    __slots__ = ("crc", "data", "error", "note", "produced", "uninitialized")

    def __init__(self, data: bytes, error: str | None = None, uninitialized: bool = False, note: str | None = None,
                 produced: int = 0, crc: int | None = None) -> None:
        self.data = data
        """What torch reads (a prefix of it when ``uninitialized`` or when capped)."""
        self.error = error
        """miniz reports an error: torch raises ``PytorchStreamReader failed reading file …: <error>``."""
        self.uninitialized = uninitialized
        """torch's buffer continues past ``data`` with memory nothing wrote (its content is unpredictable)."""
        self.note = note
        """Why the bytes are not simply the member's content (stream longer than declared, corrupt …)."""
        self.produced = produced
        """How many meaningful bytes torch's buffer holds (``data`` is their prefix when extracted with ``keep``)."""
        self.crc = crc
        """CRC-32 of all ``produced`` bytes (what Python's zipfile checks), where known."""

    def __repr__(self) -> str:
        return f"Extracted({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"

    def without_data(self) -> Extracted:
        """The same reading with its bytes released (memory, once they are parsed)."""
        return Extracted(b"", self.error, self.uninitialized, self.note, self.produced, self.crc)

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.produced


def stat_error(m: zr.ZipMember) -> str | None:
    """The error ``mz_zip_reader_file_stat`` leaves behind (torch checks it right after the call):
    a malformed ZIP64 extra, or what ``mz_zip_reader_is_file_supported`` flags as a side effect."""
    if m.stat_error is not None:
        return m.stat_error
    if m.method not in (0, 8):
        return zr.METHOD
    if m.flags & (1 | 64):
        return zr.ENCRYPTION
    if m.flags & 32:
        return zr.FEATURE
    return None


def data_offset(z: zr.Archive, m: zr.ZipMember) -> int:
    """Local header offset + 30 + the local name and extra lengths; ZipStructureError where miniz fails."""
    known = z.known_data_offset(m)
    if known is not None:  # the local headers were scanned (ZipArchive.local_headers): no read
        if known >= 0:
            return known
        raise zr.ZipStructureError(zr.READ_FAILED if known == zr.LocalHeaders.READ_FAILED else zr.CORRUPTED,
                                   f"reading file {m.name}")
    lfh = z._read(m.header_offset, 30)
    if len(lfh) != 30:
        raise zr.ZipStructureError(zr.READ_FAILED, f"reading file {m.name}")
    if lfh[:4] != b"PK\x03\x04":
        raise zr.ZipStructureError(zr.CORRUPTED, f"reading file {m.name}")
    nlen, xlen = struct.unpack_from("<HH", lfh, 26)
    return int(m.header_offset + 30 + nlen + xlen)


def local_header(z: zr.Archive, m: zr.ZipMember) -> tuple[bytes, int, int] | None:
    """(local name, local flags, local method), or None when there is no local header there."""
    known = z.known_local_header(m)
    if known is not False:
        return known  # type: ignore[return-value]  # not False: a header or None
    lfh = z._read(m.header_offset, 30)
    if len(lfh) != 30 or lfh[:4] != b"PK\x03\x04":
        return None
    flags, method = struct.unpack_from("<HH", lfh, 6)
    nlen = struct.unpack_from("<H", lfh, 26)[0]
    return z._read(m.header_offset + 30, nlen), flags, method


def extract(z: zr.Archive, m: zr.ZipMember, cap: int, keep: int | None = None) -> Extracted:
    """The bytes torch reads for ``m``; at most ``cap`` of them are produced (LimitExceeded past it).

    With ``keep``, the whole member is still inflated (to learn what miniz reports, charging the
    budget) but only its first ``keep`` bytes are held; ``MemberReader`` reads further on demand."""
    if m.stat_error is not None:
        return Extracted(b"", error=m.stat_error)
    if m.is_directory or m.compressed_size == 0:
        if m.size == 0:
            return Extracted(b"")
        return Extracted(b"", uninitialized=True,
                         note=f"miniz extracts nothing for a {'directory' if m.is_directory else 'zero-length'} "
                              f"entry: torch reads {m.size} bytes of uninitialised memory")
    if m.flags & (1 | 32 | 64):
        return Extracted(b"", error=zr.ENCRYPTION)
    if m.method not in (0, 8):
        return Extracted(b"", error=zr.METHOD)
    try:
        start = data_offset(z, m)
    except zr.ZipStructureError as e:
        return Extracted(b"", error=e.mz_error)
    if start + m.compressed_size > z.file_size:
        return Extracted(b"", error=zr.CORRUPTED)
    if m.method == 0:
        if start + m.size > z.file_size:
            return Extracted(b"", error=zr.READ_FAILED)
        if keep is not None and m.size > keep:
            return Extracted(z._read(start, keep), produced=m.size)
        if m.size > cap:
            raise LimitExceeded("max_pickle_bytes", cap, f"zip member {m.name!r} holds {m.size} bytes")
        z.budget.charge_bytes(m.size, "bytes read from zip members")
        data = z._read(start, m.size)
        return Extracted(data, produced=m.size, crc=zlib.crc32(data))
    return _inflate(z, m, start, cap, keep)


def _inflate(z: zr.Archive, m: zr.ZipMember, start: int, cap: int, keep: int | None) -> Extracted:
    size = m.size
    limit = size if keep is None else min(size, keep)
    d = zlib.decompressobj(-15)
    out = bytearray()
    produced = crc = 0
    pos = 0
    corrupt = False

    def take(piece: bytes) -> None:
        nonlocal produced, crc
        if len(out) < limit:
            out.extend(piece[:limit - len(out)])
        crc = zlib.crc32(piece[:max(0, size - produced)], crc)
        produced += len(piece)
        z.budget.charge_bytes(len(piece), "bytes inflated from zip members")

    while not d.eof and produced <= size:
        if keep is None and produced > cap:
            raise LimitExceeded("max_pickle_bytes", cap, f"zip member {m.name!r} inflates past it")
        chunk = d.unconsumed_tail
        if not chunk:
            if pos >= m.compressed_size:
                break
            chunk = z._read(start + pos, min(_CHUNK, m.compressed_size - pos))
            pos += len(chunk)
        saved = d.copy()
        try:
            take(d.decompress(chunk, min(size - produced, _CHUNK * 64) + 1))
        except zlib.error:
            # Keep what a streaming inflater writes before the bad code: replay the chunk bytewise.
            d = saved
            corrupt = True
            for i in range(len(chunk)):
                try:
                    take(d.decompress(chunk[i:i + 1]))
                except zlib.error:
                    break
                if produced > size:
                    break
            break
    if produced >= size:
        if d.eof and produced == size:
            return Extracted(bytes(out), produced=size, crc=crc)
        return Extracted(bytes(out[:size]), produced=size,
                         note=f"the deflate stream does not end at the declared {size} bytes: torch reads the "
                              "first ones and ignores the rest")
    if d.eof:
        return Extracted(bytes(out), error=zr.DECOMPRESSED_SIZE, produced=produced)
    why = "corrupt" if corrupt else "truncated"
    return Extracted(bytes(out), uninitialized=True, produced=produced,
                     note=f"{why} deflate stream: torch reads the {produced} bytes inflated before it fails, "
                          f"then {size - produced} bytes of uninitialised memory")


class MemberReader:
    """An entry's bytes (as torch reads them) on demand, for ``Assembler.parse_file_stream``: a parse
    that stops early never makes the whole member inflate into memory (a deflate bomb stays small)."""

    def __init__(self, z: zr.Archive, m: zr.ZipMember, rec: Extracted) -> None:
        self.z, self.m = z, m
        self.size = rec.produced
        self.bytes_read = 0
        self._buf = rec.data

    def pread(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + n)
        if end > len(self._buf):
            self._buf = inflated_prefix(self.z, self.m, end)
        return self._buf[offset:end]


def inflated_prefix(z: zr.Archive, m: zr.ZipMember, n: int) -> bytes:
    """The first ``n`` bytes of an entry that extracted cleanly before (no budget charge: it was)."""
    start = data_offset(z, m)
    if m.method == 0:
        return z._read(start, min(n, m.size))
    d = zlib.decompressobj(-15)
    out = bytearray()
    pos = 0
    while len(out) < n and not d.eof:
        chunk = d.unconsumed_tail
        if not chunk:
            if pos >= m.compressed_size:
                break
            chunk = z._read(start + pos, min(_CHUNK, m.compressed_size - pos))
            pos += len(chunk)
        try:
            out += d.decompress(chunk, n - len(out))
        except zlib.error:
            break
    return bytes(out[:n])


def head(z: zr.Archive, m: zr.ZipMember, n: int = 2) -> bytes:
    """The first ``n`` bytes torch would read for ``m`` (b"" where it reads nothing or fails)."""
    if m.stat_error is not None or m.is_directory or m.compressed_size == 0 or m.flags & (1 | 32 | 64):
        return b""
    try:
        start = data_offset(z, m)
    except zr.ZipStructureError:
        return b""
    if m.method == 0:
        return z._read(start, min(n, m.size))
    if m.method != 8:
        return b""
    d = zlib.decompressobj(-15)
    try:
        return d.decompress(z._read(start, min(m.compressed_size, 1024)), min(n, m.size) or 1)[:m.size]
    except zlib.error:
        return b""


def record_error(z: zr.Archive, m: zr.ZipMember | None, record: str, cap: int) -> str | None:
    """What ``getRecord(record)`` raises for a tensor record, or None; stored data is not read."""
    if m is None:
        return f"PytorchStreamReader failed locating file {record}: file not found"
    if (m.stat_error is None and m.method == 0 and not m.flags & (1 | 32 | 64) and m.compressed_size
            and not m.external_attr & 0x10 and not m.raw_name.endswith(b"/")):
        start = z.known_data_offset(m)  # the common record, once the local headers were scanned: no calls
        if start is not None and start >= 0 and start + max(m.compressed_size, m.size) <= z.file_size:
            return None
    problem = stat_error(m)
    if problem is not None:
        return f"PytorchStreamReader failed retrieving file meta-data for {record}: {problem}"
    if m.method == 0 and not m.is_directory and m.compressed_size:
        try:
            start = data_offset(z, m)
        except zr.ZipStructureError as e:
            problem = e.mz_error
        else:
            if start + m.compressed_size > z.file_size:
                problem = zr.CORRUPTED
            elif start + m.size > z.file_size:
                problem = zr.READ_FAILED
    else:
        problem = extract(z, m, cap, keep=0).error
    return None if problem is None else f"PytorchStreamReader failed reading file {record}: {problem}"


_GAP = 4096
"""Headers at most this far apart are read in one read (the bytes between are cheaper than a call)."""
_WINDOW = 1 << 20
"""Most bytes one read of nearby headers spans (memory stays bounded, whatever the file's size)."""


def scan_local_headers(z: zr.Archive) -> zr.LocalHeaders:
    """Every entry's local header, in file order, with as few reads as nearby headers allow: what
    ``data_offset`` and ``local_header`` would find for each entry, one read per run of close headers."""
    members = z.members
    size = z.file_size
    out = zr.LocalHeaders(len(members))
    data_offsets, unpack = out.data_offsets, _LFH.unpack_from
    offsets = list(map(zr.HEADER_OFFSET, members))
    names = list(map(zr.RAW_NAME, members))
    ends = [off + 30 + len(raw) for off, raw in zip(offsets, names, strict=True)]  # each header's name end
    order = sorted(range(len(members)), key=offsets.__getitem__)
    n = len(order)
    buf, start, have = b"", 0, 0
    for k in range(n):
        i = order[k]
        off, raw, end = offsets[i], names[i], ends[i]
        if off >= size:
            data_offsets[i] = zr.LocalHeaders.READ_FAILED
            continue
        if not (start <= off and (end <= have or have >= size)):
            j = k + 1
            while j < n:  # stretch the read over the next headers while they are close
                e = ends[order[j]]
                if e - end > _GAP or e - off > _WINDOW:
                    break
                if e > end:
                    end = e
                j += 1
            buf, start = z._read(off, end - off), off
            have = start + len(buf)
        rel = off - start
        if have - off < 30:
            data_offsets[i] = zr.LocalHeaders.READ_FAILED
            continue
        if not buf.startswith(b"PK\x03\x04", rel):
            data_offsets[i] = zr.LocalHeaders.BAD_SIGNATURE
            continue
        lflags, lmethod, nlen, xlen = unpack(buf, rel + 6)
        data_offsets[i] = off + 30 + nlen + xlen
        m = members[i]
        if lflags == m[2] and lmethod == m[3] and nlen == len(raw) and buf.startswith(raw, rel + 30):
            continue  # the local header says what the central one says (m[2], m[3]: flags, method)
        if off + 30 + nlen <= have or have >= size:
            name = buf[rel + 30:rel + 30 + nlen]
        else:
            name = z._read(off + 30, nlen)
        if name != raw or lflags != m.flags or lmethod != m.method:
            out.differs[i] = (name, lflags, lmethod)
    return out
