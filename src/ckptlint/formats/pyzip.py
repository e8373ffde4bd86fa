"""The other reader a user (or a scanner) runs on a checkpoint: CPython's ``zipfile``.

It is run as it is, not re-implemented, so its reading is exact for the Python
ckptlint runs on. Where it differs from miniz (torch):

- the end record must be the last ``PK\\x05\\x06`` in the file with 22 bytes after
  it, else the file "is not a zip file" (miniz skips such a trailing signature);
- the ZIP64 end record is read from just before the locator, not where the
  locator points;
- central directory offsets are shifted by data prepended to the archive ("concat");
- the directory *size*, not the entry count, decides how many entries are read;
- names are cut at the first NUL, and the last entry of a name wins (exact match);
- member reads check the local header's name and the CRC.

Reads are bounded by the file's Budget like every other read.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ..errors import LimitExceeded
from ..limits import Budget
from .zipreader import ZipArchive

if TYPE_CHECKING:  # zipfile is imported only where it opens an archive (start-up of a small check)
    import zipfile

# zipfile's own layout constants (tests/test_pyzip_end_record.py holds them equal to zipfile's)
_END = struct.Struct("<4s4H2LH")  # structEndArchive
_LOCATOR64 = struct.Struct("<4sLQL")  # structEndArchive64Locator
_END64 = struct.Struct("<4sQ2H2L4Q")  # structEndArchive64
_ECD_SIGNATURE, _ECD_SIZE, _ECD_OFFSET, _ECD_LOCATION = 0, 5, 6, 9
_END_SIG, _LOCATOR64_SIG, _END64_SIG = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
MAX_EXTRACT_VERSION = 63


@functools.cache
def _errors() -> tuple[type[BaseException], ...]:
    """Everything ``zipfile`` raises on a hostile archive (importing zipfile on first need)."""
    import zipfile
    import zlib

    return (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError,
            OverflowError, EOFError, OSError, zlib.error, UnicodeDecodeError, KeyError, IndexError,
            MemoryError, AttributeError, TypeError)


class PyMember:
    """One entry as ``zipfile.ZipFile`` lists it (a plain class: see zipextract.Extracted)."""

    __slots__ = ("compressed_size", "crc", "header_offset", "method", "name", "size")

    def __init__(self, name: str, header_offset: int, compressed_size: int, size: int, method: int, crc: int) -> None:
        self.name = name
        self.header_offset = header_offset
        self.compressed_size = compressed_size
        self.size = size
        self.method = method
        self.crc = crc


class Listed(Protocol):
    """An entry as zipfile lists it: a PyMember, or miniz's own entry where the two listings coincide."""

    @property
    def name(self) -> str: ...
    @property
    def header_offset(self) -> int: ...
    @property
    def compressed_size(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def method(self) -> int: ...
    @property
    def crc(self) -> int: ...


class PyZipView:
    """What ``zipfile.ZipFile`` lists, or why it refuses the archive.

    Where zipfile would list exactly miniz's entries (``same_as``: see ``_coincides``), the listing is
    miniz's parse itself: no second parse of the directory and no ZipInfo per entry."""

    def __init__(self, error: str | None, members: Sequence[Listed], by_name: dict[str, Listed] | None = None,
                 zf: zipfile.ZipFile | None = None, same_as: ZipArchive | None = None,
                 f: BinaryIO | None = None) -> None:
        self.error = error
        self.members = members
        self._by_name = by_name
        self._zf = zf
        self._infos: dict[tuple[int, str], zipfile.ZipInfo] | None = None
        self.same_as = same_as
        """miniz's archive, when zipfile lists exactly its entries (same names, offsets, sizes, order)."""
        self._f = f

    @property
    def by_name(self) -> dict[str, Listed]:
        """zipfile's ``NameToInfo``: exact names, the last entry of each."""
        if self._by_name is None:
            self._by_name = dict(self.same_as.by_name) if self.same_as is not None else {}
        return self._by_name

    def get(self, name: str) -> Listed | None:
        """``by_name.get(name)``, without building the table where miniz's lookup answers it."""
        z = self.same_as
        if z is not None and self._by_name is None and not z.has_duplicates:
            m = z.locate(name)  # the one entry whose name folds to it, if any; zipfile matches exactly
            return m if m is not None and m.name == name else None
        return self.by_name.get(name)

    def read(self, m: Listed, cap: int, budget: Budget) -> tuple[bytes | None, str | None]:
        """``ZipFile.read`` of ``m``, bounded: (bytes, None) or (None, zipfile's error)."""
        if self._zf is None and self.same_as is not None and self._f is not None:
            import zipfile

            try:
                self._zf = zipfile.ZipFile(self._f)
            except _errors() as e:
                return None, f"{type(e).__name__}: {e}".splitlines()[0]
        if self._zf is None:
            return None, self.error
        if self._infos is None:
            self._infos = {(i.header_offset, i.filename): i for i in self._zf.infolist()}
        info = self._infos.get((m.header_offset, m.name))
        if info is None:
            return None, "not listed"
        out = bytearray()
        try:
            with self._zf.open(info) as fh:
                while True:
                    piece = fh.read(1 << 20)
                    if not piece:
                        break
                    out += piece
                    budget.charge_bytes(len(piece), "bytes inflated by Python's zipfile")
                    if len(out) > cap:
                        raise LimitExceeded("max_pickle_bytes", cap, f"zip member {m.name!r} (Python's zipfile)")
        except LimitExceeded:
            raise
        except _errors() as e:
            return None, f"{type(e).__name__}: {e}".splitlines()[0]
        return bytes(out), None

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()


def py_zip_view(f: BinaryIO, file_size: int, budget: Budget, archive: ZipArchive | None = None) -> PyZipView:
    """Open ``f`` with ``zipfile`` (never closing ``f``); every failure is a one-line reason.

    zipfile builds one ZipInfo per central header with no bound of its own: the directory size
    its end record declares is charged to the budget first, and past ``max_zip_entries``
    possible headers it is not opened (reported as its failure to read the archive).
    ``archive``: miniz's parse of the same file; where zipfile would list exactly its entries,
    that parse is the listing (zipfile still finds its end record itself)."""
    endrec = plain_end_record(f)
    if endrec is None:
        import zipfile

        try:
            endrec = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # what ZipFile() reads first
        except _errors():
            endrec = None
    if endrec:
        cd_bytes = min(int(endrec[_ECD_SIZE]), file_size)
        if cd_bytes // 46 > budget.limits.max_zip_entries:
            return PyZipView(f"not opened: its central directory could hold {cd_bytes // 46} entries "
                             f"(limit max_zip_entries={budget.limits.max_zip_entries})", [], {})
        budget.charge_bytes(cd_bytes, "zip central directory bytes (Python's zipfile)")
        if archive is not None and _coincides(archive, endrec):
            return PyZipView(None, archive.members, same_as=archive, f=f)
    import zipfile

    try:
        zf = zipfile.ZipFile(f)
    except _errors() as e:
        return PyZipView(f"{type(e).__name__}: {e}".splitlines()[0], [], {})
    members = [PyMember(i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC)
               for i in zf.infolist()]
    by_name: dict[str, Listed] = {m.name: m for m in members}
    return PyZipView(None, members, by_name, zf)


def _coincides(z: ZipArchive, endrec: list[Any]) -> bool:
    """Whether ``ZipFile._RealGetContents`` lists exactly miniz's entries, judged from zipfile's own
    end record: the same directory bytes (no prepended data), entries that fill them exactly (zipfile
    walks the size, miniz the count), each one's name ASCII without NUL or backslash (decoded alike,
    never cut or rewritten), no extra field (nothing ZIP64 or Unicode-path to reinterpret), and a
    version zipfile extracts. Then name, offset, sizes, method and CRC are the central header's."""
    size_cd, offset_cd = endrec[_ECD_SIZE], endrec[_ECD_OFFSET]
    concat = endrec[_ECD_LOCATION] - size_cd - offset_cd
    if endrec[_ECD_SIGNATURE] == _END64_SIG:
        concat -= _END64.size + _LOCATOR64.size
    return (concat == 0 and offset_cd == z.cd_offset and size_cd == z.cd_size and z.plain
            and z.max_extract_version <= MAX_EXTRACT_VERSION)


def plain_end_record(f: BinaryIO) -> list[Any] | None:
    """``zipfile._EndRecData(f)`` for the layouts writers produce, without importing zipfile: no archive
    comment, and no ZIP64 locator or one on disk 0 with its ZIP64 end record before it (torch.save's
    layout). None: any other layout, which zipfile itself reads. Every step is zipfile's own, in its
    order; where zipfile would raise or search further, this gives up instead of guessing."""
    size = f.seek(0, 2)
    if size < _END.size:
        return None
    f.seek(size - _END.size)
    data = f.read()
    if len(data) != _END.size or data[:4] != _END_SIG or data[-2:] != b"\0\0":
        return None  # a comment, or no end record at the end: zipfile searches backwards
    endrec: list[Any] = [*_END.unpack(data), b"", size - _END.size]
    at = size - _END.size - _LOCATOR64.size
    if at < 0:
        return endrec  # zipfile: the seek fails, the file is too small for ZIP64
    f.seek(at)
    loc = f.read(_LOCATOR64.size)
    if len(loc) != _LOCATOR64.size:
        return endrec
    sig, diskno, _, disks = _LOCATOR64.unpack(loc)
    if sig != _LOCATOR64_SIG:
        return endrec
    if diskno != 0 or disks > 1 or at < _END64.size:
        return None  # zipfile raises here (multi-disk, or its unguarded seek before the file's start)
    f.seek(at - _END64.size)
    rec = f.read(_END64.size)
    if len(rec) != _END64.size:
        return endrec
    sig, _, _, _, disk_num, disk_dir, dircount, dircount2, dirsize, diroffset = _END64.unpack(rec)
    if sig != _END64_SIG:
        return endrec
    endrec[:7] = [sig, disk_num, disk_dir, dircount, dircount2, dirsize, diroffset]
    return endrec
