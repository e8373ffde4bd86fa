"""Inputs whose oracle reading is not a function of the bytes: torch reads uninitialised memory.

miniz (``mz_zip_reader_extract_*``, used by caffe2/serialize/inline_container.cc ``getRecord``)
inflates a deflated member into a buffer of the size the central directory declares. When the
deflate stream is corrupt or ends early, the rest of that buffer is never written, and torch
goes on with whatever the allocator left there: names such as ``collections.OrderedDu(X}htq``,
a serialization id that is not UTF-8, errors that change from one run to the next. No reader,
ckptlint included, can predict those bytes; ckptlint reports the read (CK107) instead.

The rule (docs/fuzzing.md), decided from the bytes alone, before either reading: a zip input is
*oracle-nondeterministic* when a central directory record (any ``PK\\x01\\x02`` in the file, so a
second or hidden directory counts too) names a deflated member whose compressed bytes zlib cannot
inflate to the uncompressed size the record declares.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from .compare import Disagreement
from .oracle import CkptlintResult

_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_MAX_SCAN = 256
"""Central records examined per input (generated archives hold a dozen; a mutated one may repeat the signature)."""


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Replace the 0xFFFFFFFF fields by the ZIP64 extra field's values, in the order the format fixes."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + size]
        if tag == 1:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            fields = [usize, csize, offset]
            for i, v in enumerate(fields):
                if v == 0xFFFFFFFF and values:
                    fields[i] = values.pop(0)
            return fields[0], fields[1], fields[2]
        pos += 4 + size
    return usize, csize, offset


def _inflates_fully(data: bytes, start: int, csize: int, usize: int) -> bool:
    """Whether ``csize`` bytes at ``start`` inflate (raw deflate, as miniz) to at least ``usize`` bytes."""
    if usize == 0:
        return True
    chunk = data[start:start + csize]
    if len(chunk) < csize:
        return False
    try:
        out = zlib.decompressobj(-15).decompress(chunk, usize)
    except zlib.error:
        return False
    return len(out) >= usize


def short_deflate_members(data: bytes) -> list[str]:
    """Names of deflated members zlib cannot inflate to their declared size (see the module docstring)."""
    if not data.startswith(_LOCAL) and _CENTRAL not in data:
        return []
    short: list[str] = []
    pos = data.find(_CENTRAL)
    seen = 0
    while pos >= 0 and seen < _MAX_SCAN:
        seen += 1
        rec = data[pos:pos + 46]
        if len(rec) == 46:
            method, = struct.unpack_from("<H", rec, 10)
            csize, usize, nlen, elen = struct.unpack_from("<IIHH", rec, 20)
            offset, = struct.unpack_from("<I", rec, 42)
            name = data[pos + 46:pos + 46 + nlen]
            extra = data[pos + 46 + nlen:pos + 46 + nlen + elen]
            usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
            if method == 8 and not _member_ok(data, offset, csize, usize):
                short.append(name.decode("utf-8", "replace"))
        pos = data.find(_CENTRAL, pos + 4)
    return short


def _member_ok(data: bytes, offset: int, csize: int, usize: int) -> bool:
    """The member at local header ``offset``; a prefix before the archive shifts every offset alike,
    so the data is also looked for where the local headers actually are."""
    found = False
    for base in {0, max(data.find(_LOCAL), 0)}:
        at = offset + base
        head = data[at:at + 30]
        if len(head) == 30 and head[:4] == _LOCAL:
            found = True
            nlen, elen = struct.unpack_from("<HH", head, 26)
            if _inflates_fully(data, at + 30 + nlen + elen, csize, usize):
                return True
    return not found  # no local header there: miniz fails to read it, a definite error


def set_aside(family: str, found: list[Disagreement], ck: CkptlintResult,
              short: list[str]) -> tuple[list[Disagreement], dict[str, Any]]:
    """Take an oracle-nondeterministic input's reading differences out of the count.

    ckptlint's own conduct (a crash, over the time or memory limit) is still judged. Where the
    readings differ, ckptlint must have named the uninitialised read (CK107): otherwise that is one
    disagreement, ``<family>/nondeterministic/no-CK107``.
    """
    kept = [d for d in found if d.check in ("crash", "limits")]
    differed = [d for d in found if d.check not in ("crash", "limits")]
    ck107 = "CK107" in ck.codes
    if differed and not ck107:
        kept.append(Disagreement(family, "nondeterministic", f"{family}/nondeterministic/no-CK107",
                                 ckptlint=f"format={ck.format} error={ck.error!r} codes={ck.codes}",
                                 oracle=f"short deflate members {short}; differed on "
                                        f"{sorted({d.check for d in differed})}"))
    return kept, {"members": short, "ck107": ck107, "differed": sorted({d.check for d in differed})}
