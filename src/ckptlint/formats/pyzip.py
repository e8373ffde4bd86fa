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

import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from ..errors import LimitExceeded
from ..limits import Budget
from .zipreader import ZipArchive

_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError,
           OverflowError, EOFError, OSError, zlib.error, UnicodeDecodeError, KeyError, IndexError,
           MemoryError, AttributeError, TypeError)


@dataclass(frozen=True, slots=True)
class PyMember:
    """One entry as ``zipfile.ZipFile`` lists it."""

    name: str
    header_offset: int
    compressed_size: int
    size: int
    method: int
    crc: int


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
            try:
                self._zf = zipfile.ZipFile(self._f)
            except _ERRORS as e:
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
        except _ERRORS as e:
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
    try:
        endrec = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # what ZipFile() reads first
    except _ERRORS:
        endrec = None
    if endrec:
        cd_bytes = min(int(endrec[zipfile._ECD_SIZE]), file_size)  # type: ignore[attr-defined]
        if cd_bytes // 46 > budget.limits.max_zip_entries:
            return PyZipView(f"not opened: its central directory could hold {cd_bytes // 46} entries "
                             f"(limit max_zip_entries={budget.limits.max_zip_entries})", [], {})
        budget.charge_bytes(cd_bytes, "zip central directory bytes (Python's zipfile)")
        if archive is not None and _coincides(archive, endrec):
            return PyZipView(None, archive.members, same_as=archive, f=f)
    try:
        zf = zipfile.ZipFile(f)
    except _ERRORS as e:
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
    size_cd, offset_cd = endrec[zipfile._ECD_SIZE], endrec[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
    concat = endrec[zipfile._ECD_LOCATION] - size_cd - offset_cd  # type: ignore[attr-defined]
    if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
        concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
    return (concat == 0 and offset_cd == z.cd_offset and size_cd == z.cd_size and z.plain
            and z.max_extract_version <= zipfile.MAX_EXTRACT_VERSION)
