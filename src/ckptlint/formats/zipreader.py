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

from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .zipextract import data_offset, extract
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
    READ_FAILED,
    TOO_MANY_FILES,
    Reader,
    ZipMember,
    ZipStructureError,
    _py_decode,
)

__all__ = [
    "CDIR_SIZE", "CORRUPTED", "DECOMPRESSED_SIZE", "ENCRYPTION", "FEATURE", "METHOD", "MULTIDISK",
    "NOT_AN_ARCHIVE", "NOT_FOUND", "NO_CENTRAL_DIR", "READ_FAILED", "TOO_MANY_FILES", "Reader",
    "ZipArchive", "ZipMember", "ZipStructureError", "zipfile_names",
]

_EOCD = struct.Struct("<4sHHHHIIH")
_LOC64 = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_U32 = 0xFFFFFFFF
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

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
        self.members: list[ZipMember] = self._central_directory()
        keys = [m.folded for m in self.members]
        self.sorted_index: list[int] = _miniz_sort(keys)
        self._sorted_keys = [keys[i] for i in self.sorted_index]
        unique = {m.folded: m for m in self.members}
        self._unique = unique if len(unique) == len(self.members) else None
        """Without duplicate names the binary search can only find the one match: a dict finds it too."""
        self.by_name: dict[str, ZipMember] = {m.name: m for m in self.members}
        """Every name, the last entry of each (for callers that only list names)."""

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
            return []
        self.budget.charge_members(total)
        self.budget.charge_bytes(cd_size, "zip central directory bytes")
        cd = self._read(cd_off, cd_size)
        if len(cd) != cd_size:
            raise ZipStructureError(READ_FAILED)
        return [self._entry(cd, p, i, this_disk) for i, p in enumerate(_entry_offsets(cd, total))]

    def _entry(self, cd: bytes, p: int, index: int, this_disk: int) -> ZipMember:
        (_, _, _, flags, method, _, _, crc, csize, size, nlen, xlen, _clen, disk, _, ext_attr,
         hoff) = _CDH.unpack_from(cd, p)
        name = cd[p + _CDH.size:p + _CDH.size + nlen]
        extra = cd[p + _CDH.size + nlen:p + _CDH.size + nlen + xlen]
        # The directory-wide sanity checks use PyTorch's patched ZIP64 parse ...
        c, d, o = csize, size, hoff
        if xlen and max(c, d, o) == _U32:
            c, d, o = _patched_zip64(extra, c, d, o)
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
                size, csize, hoff = _stat_zip64(extra, size, csize, hoff)
            except ValueError:
                stat_error = CORRUPTED
        if b"\x00" in name:
            self.anomalies.append(f"zip member name with a NUL byte: {name.decode('utf-8', 'replace')!r} "
                                  "(C strings end there: torch and Python's zipfile see different names)")
        return ZipMember(index, name, flags, method, crc, csize, size, hoff, ext_attr, stat_error,
                         name.translate(_LOWER))

    # -- lookup ---------------------------------------------------------------------------------

    def locate(self, name: str | bytes) -> ZipMember | None:
        """``mz_zip_reader_locate_file(name, flags=0)``: the entry torch reads for ``name``."""
        raw = name.encode("utf-8") if isinstance(name, str) else name
        key = raw.split(b"\x00", 1)[0].translate(_LOWER)  # torch passes a C string
        if self._unique is not None:
            return self._unique.get(key)
        keys = self._sorted_keys
        lo, hi = 0, len(keys) - 1
        while lo <= hi:
            mid = lo + ((hi - lo) >> 1)
            folded = keys[mid]
            if folded == key:
                return self.members[self.sorted_index[mid]]
            if folded < key:
                lo = mid + 1
            else:
                hi = mid - 1
        return None

    def same_name(self, m: ZipMember) -> list[ZipMember]:
        """Every entry miniz cannot tell apart from ``m`` (equal names, ASCII case ignored)."""
        key = m.folded
        return [o for o in self.members if o.folded == key]

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


def _patched_zip64(extra: bytes, c: int, d: int, o: int) -> tuple[int, int, int]:
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


def _stat_zip64(extra: bytes, size: int, csize: int, hoff: int) -> tuple[int, int, int]:
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


def _miniz_sort(keys: list[bytes]) -> list[int]:
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
