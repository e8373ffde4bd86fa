"""The zip reader torch runs: miniz (``third_party/miniz-3.0.2``) as PyTorchStreamReader drives it.

Every decision mirrors the C code, so ckptlint reads the bytes torch reads:

- the end record is the *last* ``PK\\x05\\x06`` with at least 22 bytes after it,
  searched backwards in 4 KiB blocks (overlapping by 3 bytes) up to ~64 KiB from the end
  (``mz_zip_reader_locate_header_sig``); the comment length is never checked; a step
  that would start before byte 0 fails (the clamp to 0 is computed unsigned);
- a ZIP64 locator right before it is followed whenever the record it points at
  has the ZIP64 signature, whatever the classic fields say
  (``mz_zip_reader_read_central_dir``);
- the entry *count* (not the directory size) says how many entries there are,
  and each is sanity-checked as miniz does (PyTorch's patched ZIP64 extra parse);
- names are looked up case-insensitively (ASCII only) by a binary search over a
  heap-sorted index (``mz_zip_reader_sort_central_dir_offsets_by_filename``,
  ``mz_zip_locate_file_binary_search``): among duplicate names the copy found
  is the one the heap sort and the search land on, not the first or last;
- data is read at the local header offset + 30 + the *local* name and extra
  lengths; sizes, method and flags come from the central header; CRCs are not
  checked (torch builds miniz with ``MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS``).

Extraction (stored and deflated members, exactly as ``mz_zip_reader_extract_to_mem``
behaves, including its silent failures) lives in zipextract.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .zipextract import data_offset, extract, scan_local_headers
from .zipmember import (
    CDIR_SIZE,
    CORRUPTED,
    DECOMPRESSED_SIZE,
    ENCRYPTION,
    FEATURE,
    METHOD,
    MULTIDISK,
    NO_CENTRAL_DIR,
    NOT_AN_ARCHIVE,
    NOT_FOUND,
    RAW_NAME,
    READ_FAILED,
    TOO_MANY_FILES,
    LocalHeaders,
    Reader,
    ZipMember,
    ZipStructureError,
    _py_decode,
    miniz_sort,
    patched_zip64,
    stat_zip64,
)

__all__ = [
    "CDIR_SIZE", "CORRUPTED", "DECOMPRESSED_SIZE", "ENCRYPTION", "FEATURE", "METHOD", "MULTIDISK",
    "NOT_AN_ARCHIVE", "NOT_FOUND", "NO_CENTRAL_DIR", "READ_FAILED", "TOO_MANY_FILES", "Reader",
    "ZipArchive", "ZipMember", "ZipStructureError", "open_archive", "parsed_archive",
    "zipfile_names",
]

_EOCD = struct.Struct("<4sHHHHIIH")
_LOC64 = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_CDH_FIELDS = struct.Struct("<6xHHH4xIIIHHHH2xII")
"""The central header's fields the directory walk reads (needed, flags, method, crc, compressed size, size, name,
extra and comment lengths, disk, external attributes, local header offset): no object for the others."""
_U32 = 0xFFFFFFFF
_NEW: Callable[[type[ZipMember], tuple[Any, ...]], ZipMember] = tuple.__new__
"""Builds a ZipMember from its fields without the named tuple's Python-level ``__new__``."""
_miniz_sort = miniz_sort  # its old name here (tests compare it with miniz's heap sort)
ASCII_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
"""``bytes.translate`` table of miniz's name comparison (ASCII letters folded, nothing else)."""

class ZipArchive:
    """A zip archive as miniz opens it for torch: entries in directory order plus its lookup index."""

    def __init__(self, read: Reader, file_size: int, limits: Limits = DEFAULT_LIMITS,
                 budget: Budget | None = None) -> None:
        self.read_at = read
        self.file_size = file_size
        self.limits = limits
        self.budget = budget if budget is not None else Budget(limits)
        self.anomalies: list[str] = []
        self.zip64 = False
        self.eocd_offset = -1
        self.cd_offset = 0
        self.cd_size = 0
        self._charged = (0, 0)
        """(entries, directory bytes) charged to the budget while parsing (``view`` replays them)."""
        self.max_extract_version = 0
        """The highest "version needed to extract" among the entries (Python's zipfile refuses some)."""
        self.plain = True
        """Every entry has an ASCII name without NUL or backslash and no extra field, and the entries
        fill the directory exactly: Python's zipfile lists these entries as they are (pyzip.py)."""
        self.members: list[ZipMember] = self._central_directory()
        self._shared = _Shared(self.members)
        """Lookup tables and the local-header scan, built once and shared by every view."""

    def view(self, budget: Budget) -> ZipArchive:
        """This archive charged to ``budget`` instead: the directory is not parsed again, its charges are
        replayed (the caller's budget ends up exactly where parsing the archive anew would leave it)."""
        _replay(self._charged, budget)
        v = object.__new__(ZipArchive)  # copy.copy(self) without importing copy (startup): a plain instance
        v.__dict__.update(self.__dict__)
        v.budget = budget
        v.anomalies = list(self.anomalies)
        return v

    @property
    def sorted_index(self) -> list[int]:
        """miniz's heap-sorted entry order (by case-folded name)."""
        return self._shared.sorted()[0]

    @property
    def raw_names(self) -> list[bytes]:
        """Every entry's raw name, in directory order (one list, built in C once: callers test them all at once)."""
        return self._shared.raw_names()

    @property
    def by_name(self) -> dict[str, ZipMember]:
        """Every name, the last entry of each (for callers that only list names)."""
        return self._shared.by_name()

    # -- mz_zip_reader_read_central_dir ---------------------------------------------------------

    def _read(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset >= self.file_size or n <= 0:
            return b""
        return self.read_at(offset, min(n, self.file_size - offset))

    def _locate_eocd(self) -> int:
        size = self.file_size
        if size < _EOCD.size:
            raise ZipStructureError(NOT_AN_ARCHIVE)
        cur = max(size - 4096, 0)
        while True:
            n = min(4096, size - cur)
            buf = self._read(cur, n)
            if len(buf) != n:
                raise ZipStructureError(NO_CENTRAL_DIR)
            end = n
            while True:
                i = buf.rfind(b"PK\x05\x06", 0, end)
                if i < 0:
                    break
                if size - (cur + i) >= _EOCD.size:
                    return cur + i
                end = i + 3
            if cur == 0 or size - cur >= 0xFFFF + _EOCD.size:
                raise ZipStructureError(NO_CENTRAL_DIR)
            if cur < 4096 - 3:
                # MZ_MAX(cur_file_ofs - (sizeof(buf_u32) - 3), 0) is computed unsigned: the offset
                # goes negative instead of to 0 and the read fails (torch: "Invalid argument")
                raise ZipStructureError(NO_CENTRAL_DIR)
            cur -= 4096 - 3

    def _central_directory(self) -> list[ZipMember]:
        eocd = self._locate_eocd()
        self.eocd_offset = eocd
        rec = self._read(eocd, _EOCD.size)
        _, this_disk, cd_disk, on_disk, total, cd_size, cd_off, _ = _EOCD.unpack(rec)
        loc = self._read(eocd - _LOC64.size, _LOC64.size) if eocd >= _LOC64.size + _EOCD64.size else b""
        if len(loc) == _LOC64.size and loc[:4] == b"PK\x06\x07":
            _, _, eocd64_off, disks = _LOC64.unpack(loc)
            if eocd64_off > self.file_size - _EOCD64.size:
                raise ZipStructureError(NOT_AN_ARCHIVE)
            rec64 = self._read(eocd64_off, _EOCD64.size)
            if len(rec64) == _EOCD64.size and rec64[:4] == b"PK\x06\x06":
                self.zip64 = True
                (_, rec_size, _, _, this_disk, cd_disk, on_disk64, total64, cd_size64,
                 cd_off) = _EOCD64.unpack(rec64)
                if rec_size < _EOCD64.size - 12:
                    raise ZipStructureError(CORRUPTED)
                if disks != 1:
                    raise ZipStructureError(MULTIDISK)
                if total64 > _U32 or on_disk64 > _U32:
                    raise ZipStructureError(TOO_MANY_FILES)
                if cd_size64 > _U32:
                    raise ZipStructureError(CDIR_SIZE)
                total, on_disk, cd_size = total64, on_disk64, cd_size64
                if eocd64_off + _EOCD64.size + _LOC64.size != eocd:
                    self.anomalies.append(
                        f"the ZIP64 locator points at an end record at offset {eocd64_off}, not the one just "
                        "before it: torch.load (miniz) follows the locator, Python's zipfile reads the one before it")
        if total != on_disk:
            raise ZipStructureError(MULTIDISK)
        if (this_disk | cd_disk) != 0 and (this_disk != 1 or cd_disk != 1):
            raise ZipStructureError(MULTIDISK)
        if cd_size < total * _CDH.size or cd_off + cd_size > self.file_size:
            raise ZipStructureError(CORRUPTED)
        self.cd_offset, self.cd_size = cd_off, cd_size
        if total == 0:
            self.plain = cd_size == 0
            return []
        self._charged = (total, cd_size)
        _replay(self._charged, self.budget)
        cd = self._read(cd_off, cd_size)
        if len(cd) != cd_size:
            raise ZipStructureError(READ_FAILED)
        members, used = self._entries(cd, total, this_disk)
        if used != cd_size:
            self.plain = False  # Python's zipfile reads entries while bytes of the directory are left
        return members

    def _entries(self, cd: bytes, total: int, this_disk: int) -> tuple[list[ZipMember], int]:
        """miniz's walk over ``total`` central headers (the count, not the size, decides) and its checks
        of each, in one pass; returns the entries and the bytes they span. miniz walks every header before
        it checks any: a failed check is raised once the rest of the walk found no malformed header."""
        unpack, new, fold = _CDH_FIELDS.unpack_from, _NEW, ASCII_FOLD
        file_size, nul, sig, u32 = self.file_size, b"\x00", b"PK\x01\x02", _U32
        max_needed = self.max_extract_version  # _entry may raise it: read again after each call
        members: list[ZipMember] = []
        append = members.append
        p, left = 0, len(cd)
        for index in range(total):
            if left < 46 or not cd.startswith(sig, p):
                raise ZipStructureError(CORRUPTED)
            needed, flags, method, crc, csize, size, nlen, xlen, clen, disk, ext_attr, hoff = unpack(cd, p)
            step = 46 + nlen + xlen
            if step > left:
                raise ZipStructureError(CORRUPTED)  # miniz re-reads the extra from a wrong offset, then fails
            step += clen
            if step > left:
                raise ZipStructureError(CORRUPTED)
            if xlen or flags & 0x2000 or (disk != this_disk and disk != 1) or disk == 0xFFFF or csize == u32 \
                    or size == u32 or hoff + 30 + csize > file_size or (
                    size != csize if method == 0 else size and not csize) or needed > max_needed:
                try:
                    m = self._entry(cd, p, index, this_disk)
                except ZipStructureError:
                    _entry_offsets(cd[p + step:], total - index - 1)  # a malformed header after it comes first
                    raise
                max_needed = self.max_extract_version
            else:  # the common entry (no extra field, sane sizes): what _entry makes of it, inline
                name = cd[p + 46:p + 46 + nlen]
                # find, not `in`: `bytes in bytes` first tries the operand as an int and raises (a TypeError
                # built and cleared per test, several times find's cost)
                if name.find(nul) >= 0:
                    m = self._entry(cd, p, index, this_disk)
                    max_needed = self.max_extract_version
                else:
                    m = new(ZipMember, (index, name, flags, method, crc, size if csize == size else csize, size,
                                        hoff, ext_attr, None, name.translate(fold)))
            append(m)
            p += step
            left -= step
        if self.plain:  # _entry's test of an entry's name, for the common entries: all names at once, in C
            names = b"".join(map(RAW_NAME, members))
            if not names.isascii() or names.find(b"\\") >= 0:
                self.plain = False
        return members, p

    def _entry(self, cd: bytes, p: int, index: int, this_disk: int) -> ZipMember:
        (_, _, needed, flags, method, _, _, crc, csize, size, nlen, xlen, _clen, disk, _, ext_attr,
         hoff) = _CDH.unpack_from(cd, p)
        name = cd[p + 46:p + 46 + nlen]
        extra = cd[p + 46 + nlen:p + 46 + nlen + xlen] if xlen else b""
        if needed > self.max_extract_version:
            self.max_extract_version = needed
        if self.plain and (xlen or not name.isascii() or b"\x00" in name or b"\\" in name):
            self.plain = False
        # The directory-wide sanity checks use PyTorch's patched ZIP64 parse ...
        c, d, o = csize, size, hoff
        if xlen and max(c, d, o) == _U32:
            c, d, o = patched_zip64(extra, c, d, o)
        if c != _U32 and d != _U32 and ((method == 0 and d != c) or (d and not c)):
            raise ZipStructureError(CORRUPTED)
        if disk == 0xFFFF or (disk != this_disk and disk != 1):
            raise ZipStructureError(MULTIDISK)
        if c != _U32 and o + 30 + c > self.file_size:
            raise ZipStructureError(CORRUPTED)
        if flags & 0x2000:
            raise ZipStructureError(ENCRYPTION)
        # ... while extraction uses mz_zip_file_stat_internal's, which can fail on its own.
        stat_error = None
        if max(csize, size, hoff) == _U32 and xlen:
            try:
                size, csize, hoff = stat_zip64(extra, size, csize, hoff)
            except ValueError:
                stat_error = CORRUPTED
        if b"\x00" in name:
            self.anomalies.append(f"zip member name with a NUL byte: {name.decode('utf-8', 'replace')!r} "
                                  "(C strings end there: torch and Python's zipfile see different names)")
        if csize == size:
            csize = size  # one int object for both (stored members)
        return ZipMember(index, name, flags, method, crc, csize, size, hoff, ext_attr, stat_error,
                         name.translate(ASCII_FOLD))  # the same object as name when nothing folds

    # -- lookup ---------------------------------------------------------------------------------

    def locate(self, name: str | bytes) -> ZipMember | None:
        """``mz_zip_reader_locate_file(name, flags=0)``: the entry torch reads for ``name``."""
        raw = name.encode("utf-8") if isinstance(name, str) else name
        key = raw.split(b"\x00", 1)[0].translate(ASCII_FOLD)  # torch passes a C string
        unique = self._shared.unique
        if unique is not None:
            return unique.get(key)
        index, keys = self._shared.sorted()
        lo, hi = 0, len(keys) - 1
        while lo <= hi:
            mid = lo + ((hi - lo) >> 1)
            folded = keys[mid]
            if folded == key:
                return self.members[index[mid]]
            if folded < key:
                lo = mid + 1
            else:
                hi = mid - 1
        return None

    def same_name(self, m: ZipMember) -> list[ZipMember]:
        """Every entry miniz cannot tell apart from ``m`` (equal names, ASCII case ignored)."""
        if self._shared.unique is not None:
            return [m]
        key = m.folded
        return [o for o in self.members if o.folded == key]

    @property
    def has_duplicates(self) -> bool:
        """Some entries share a name (ASCII case ignored)."""
        return self._shared.unique is None

    def known_data_offset(self, m: ZipMember) -> int | None:
        """``m``'s data offset (or a LocalHeaders code) once the local headers were scanned, else None."""
        local = self._shared.local
        return None if local is None else local.data_offsets[m.index]

    def name_index(self) -> tuple[dict[bytes, ZipMember], memoryview] | None:
        """(folded name -> entry, data offset per entry index) once the local headers were scanned and no
        two names fold alike: what ``locate`` and ``known_data_offset`` read, for a caller looking up
        thousands of records (one per storage). None otherwise."""
        shared = self._shared
        if shared.unique is None or shared.local is None:
            return None
        return shared.unique, shared.local.data_offsets

    def known_local_header(self, m: ZipMember) -> tuple[bytes, int, int] | bool | None:
        """What ``local_header`` returns for ``m``, once the local headers were scanned; else False."""
        local = self._shared.local
        if local is None:
            return False
        if local.data_offsets[m.index] < 0:
            return None
        return local.differs.get(m.index) or (m.raw_name, m.flags, m.method)

    def local_headers(self) -> LocalHeaders:
        """Every entry's local header, read once in file order (few reads: nearby headers share one)."""
        if self._shared.local is None:
            self._shared.local = scan_local_headers(self)
        return self._shared.local

    def data_offset(self, m: ZipMember) -> int:
        """Where torch reads the member's bytes: after the *local* header's name and extra field."""
        return data_offset(self, m)

    def read_member(self, m: ZipMember, limit: int | None = None) -> bytes:
        """The bytes torch reads for ``m`` (FormatError where torch raises or reads memory it never wrote)."""
        rec = extract(self, m, self.limits.max_pickle_bytes if limit is None else limit)
        if rec.error is not None:
            raise FormatError(f"zip member {m.name!r}: {rec.error}")
        if rec.uninitialized:
            raise FormatError(f"zip member {m.name!r}: {rec.note}")
        return rec.data

    def read(self, name: str, limit: int | None = None) -> bytes:
        m = self.locate(name)
        if m is None:
            raise FormatError(f"zip member {name!r} not found")
        return self.read_member(m, limit)



class Source(Protocol):
    """An open file the readers share (``common.CountingFile``)."""

    size: int
    cache: dict[str, Any]

    def pread(self, offset: int, n: int) -> bytes: ...


def open_archive(f: Source, limits: Limits, budget: Budget) -> ZipArchive:
    """``ZipArchive(f.pread, f.size, limits, budget)``, with the directory parsed once per open file:
    every reader of the file (npz, torch.export, torch's zip reading, the not-a-checkpoint listing)
    gets a view of one parse, charged to its own budget as a parse of its own would charge it.
    A refusal is remembered too and raised again, after the same charges."""
    _, archive, error, charges = _parsed(f, limits)
    if archive is not None:
        return archive.view(budget)
    _replay(charges, budget)
    assert error is not None
    raise error


def parsed_archive(f: Source, limits: Limits) -> ZipArchive | None:
    """The file's one parse of its directory, to look at (None where miniz refuses it); charges nothing."""
    return _parsed(f, limits)[1]


_Parsed = tuple[Limits, ZipArchive | None, FormatError | None, tuple[int, int]]


def _parsed(f: Source, limits: Limits) -> _Parsed:
    cached: _Parsed | None = f.cache.get("zip")
    if cached is None or cached[0] is not limits:
        scratch = Budget(limits)
        try:
            cached = (limits, ZipArchive(f.pread, f.size, limits, scratch), None, (0, 0))
        except FormatError as e:  # ZipStructureError, or a bound the directory alone exceeds
            cached = (limits, None, e, (scratch.members, scratch.inflated_bytes))
        f.cache["zip"] = cached
    return cached


def _replay(charges: tuple[int, int], budget: Budget) -> None:
    """The directory's charges (entries, then its bytes), as parsing it charges them."""
    entries, nbytes = charges
    if entries:
        budget.charge_members(entries)
    if nbytes:
        budget.charge_bytes(nbytes, "zip central directory bytes")


class _Shared:
    """What every view of one parsed directory shares, built on first use."""

    def __init__(self, members: list[ZipMember]) -> None:
        self.members = members
        unique = {m.folded: m for m in members}
        self.unique: dict[bytes, ZipMember] | None = unique if len(unique) == len(members) else None
        """Without duplicate names the binary search can only find the one match: a dict finds it too."""
        self._sorted: tuple[list[int], list[bytes]] | None = None
        self._by_name: dict[str, ZipMember] | None = None
        self._raw_names: list[bytes] | None = None
        self.local: LocalHeaders | None = None

    def sorted(self) -> tuple[list[int], list[bytes]]:
        if self._sorted is None:
            keys = [m.folded for m in self.members]
            index = miniz_sort(keys)
            self._sorted = index, [keys[i] for i in index]
        return self._sorted

    def raw_names(self) -> list[bytes]:
        if self._raw_names is None:
            self._raw_names = list(map(RAW_NAME, self.members))
        return self._raw_names

    def by_name(self) -> dict[str, ZipMember]:
        if self._by_name is None:
            self._by_name = {m.name: m for m in self.members}
        return self._by_name


def zipfile_names(raw: bytes) -> tuple[str, ...]:
    """The spellings under which Python's zipfile may list ``raw`` (it depends on the entry's flag)."""
    return tuple(dict.fromkeys((_py_decode(raw, 0x800), _py_decode(raw, 0))))


def _entry_offsets(cd: bytes, total: int) -> list[int]:
    """Where each of ``total`` entries starts; miniz's per-entry walk (count, not size, decides)."""
    out = []
    p, n = 0, len(cd)
    for _ in range(total):
        if n < _CDH.size or cd[p:p + 4] != b"PK\x01\x02":
            raise ZipStructureError(CORRUPTED)
        nlen, xlen, clen = struct.unpack_from("<HHH", cd, p + 28)
        if _CDH.size + nlen + xlen > n:
            raise ZipStructureError(CORRUPTED)  # miniz re-reads the extra from a wrong offset, then fails here
        size = _CDH.size + nlen + xlen + clen
        if size > n:
            raise ZipStructureError(CORRUPTED)
        out.append(p)
        p += size
        n -= size
    return out
