"""The zip data model shared by the miniz reader (zipreader.py) and its extraction (zipextract.py).

Kept apart so extraction needs no import of the reader (no import cycle): the error strings
miniz reports, one directory entry, and the few archive fields extraction reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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

Reader = Callable[[int, int], bytes]
"""``read(offset, n)``: up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""


@dataclass(frozen=True)
class ZipMember:
    """One central directory entry, with the fields ``mz_zip_reader_file_stat`` reports."""

    index: int
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

    @property
    def name(self) -> str:
        return self.raw_name.decode("utf-8", "replace")

    folded: bytes = b""
    """The name as miniz compares it (ASCII case folded)."""

    @property
    def py_name(self) -> str:
        """The name as Python's zipfile decodes it (UTF-8 only with flag 0x800, else cp437; cut at NUL)."""
        return _py_decode(self.raw_name, self.flags)

    @property
    def is_directory(self) -> bool:
        """miniz extracts nothing for these: torch's buffer stays uninitialised."""
        return self.raw_name.endswith(b"/") or bool(self.external_attr & 0x10)


class Archive(Protocol):
    """What extraction reads of an open archive (zipreader.ZipArchive is the one implementation)."""

    file_size: int
    budget: Budget

    def _read(self, offset: int, n: int) -> bytes: ...


def _py_decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace").split("\x00", 1)[0]
