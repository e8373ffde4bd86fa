"""Whether a zip is a torch.export archive, asked of every zip before it is read as a torch.save one.

Here, not in formats.pt2, which loads only for such an archive (start-up)."""

from __future__ import annotations

from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .common import CountingFile
from .zipreader import ZipArchive, open_archive


def pt2_prefix(z: ZipArchive) -> str | None:
    """The archive's folder when it is a torch.export archive (``<prefix>/archive_format`` says pt2)."""
    if b"archive_format\x00" not in b"\x00".join(z.raw_names) + b"\x00":
        return None  # no name ends so (a test in C: a torch checkpoint has 100,000s of entries)
    for m in z.members:
        # the raw name first: its decoded form ends so exactly when the bytes do (ASCII), and every
        # torch checkpoint's entry (100,000s) is looked at without decoding its name
        if m.raw_name.endswith(b"archive_format") and m.name.count("/") == 1 and m.size <= 16:
            prefix = m.name.split("/")[0]
            if z.locate(prefix + "/data.pkl") is None and z.read_member(m).strip() == b"pt2":
                return prefix
    return None


def open_pt2(f: CountingFile, limits: Limits = DEFAULT_LIMITS) -> tuple[ZipArchive, str] | None:
    """(archive, prefix) when the zip is a torch.export archive; None for anything else (the torch zip
    reader then reads it and reports its own errors)."""
    try:
        z = open_archive(f, limits, Budget(limits))  # the file's one parse of its directory
        prefix = pt2_prefix(z)
    except (FormatError, ValueError, OverflowError):
        return None
    return None if prefix is None else (z, prefix)
