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
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import LimitExceeded
from ..limits import Budget

_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError,
           OverflowError, EOFError, OSError, zlib.error, UnicodeDecodeError, KeyError, IndexError,
           MemoryError, AttributeError, TypeError)


@dataclass(frozen=True)
class PyMember:
    name: str
    header_offset: int
    compressed_size: int
    size: int
    method: int
    crc: int


@dataclass
class PyZipView:
    """What ``zipfile.ZipFile`` lists, or why it refuses the archive."""

    error: str | None
    members: list[PyMember]
    by_name: dict[str, PyMember]
    _zf: zipfile.ZipFile | None = None
    _infos: dict[tuple[int, str], zipfile.ZipInfo] | None = None

    def read(self, m: PyMember, cap: int, budget: Budget) -> tuple[bytes | None, str | None]:
        """``ZipFile.read`` of ``m``, bounded: (bytes, None) or (None, zipfile's error)."""
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


def py_zip_view(f: BinaryIO, file_size: int, budget: Budget) -> PyZipView:
    """Open ``f`` with ``zipfile`` (never closing ``f``); every failure is a one-line reason.

    zipfile builds one ZipInfo per central header with no bound of its own: the directory size
    its end record declares is charged to the budget first, and past ``max_zip_entries``
    possible headers it is not opened (reported as its failure to read the archive)."""
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
    try:
        zf = zipfile.ZipFile(f)
    except _ERRORS as e:
        return PyZipView(f"{type(e).__name__}: {e}".splitlines()[0], [], {})
    members = [PyMember(i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC)
               for i in zf.infolist()]
    by_name = {m.name: m for m in members}
    return PyZipView(None, members, by_name, zf)
