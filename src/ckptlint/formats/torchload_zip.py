"""What ``torch.load`` does with a zip before it unpickles anything, step by step.

Mirrors ``PyTorchStreamReader::init`` (caffe2/serialize/inline_container.cc) and
``torch.serialization.load``/``_load`` (torch 2.14): every record read goes
through miniz's case-insensitive lookup (zipreader.py) and extraction
(zipextract.py). The first step that raises is recorded as torch's refusal, in
torch's words; nothing after it runs.

1. the archive opens (miniz), holds at least one entry, and the first entry in
   directory order has a ``/``: the prefix is what precedes it;
2. ``.data/serialization_id`` is read when present (and decoded as UTF-8 after
   ``data.pkl`` is unpickled); then ``.data/version`` or
   ``version``, parsed like ``std::stoull`` and within [1, 10];
3. ``get_all_records``: every name (as a C string, at most 511 bytes) must start
   with ``<prefix>/`` and (pybind11 returns them as ``str``) be UTF-8; ``constants.pkl``
   among them makes it TorchScript;
4. ``_load``: ``.format_version``, then ``byteorder`` (``little`` or ``big``),
   then ``.storage_alignment`` (``int()``), then ``data.pkl``.
"""

from __future__ import annotations

import codecs
import re

from .zipextract import Extracted, extract, stat_error
from .zipreader import ZipArchive, ZipMember

KEEP = 16 << 20
"""Bytes of ``data.pkl`` held after extraction; a parse that needs more inflates it again (MemberReader)."""
SMALL_KEEP = 64 << 10
"""Bytes held of the other records torch reads (a few bytes each in every file torch writes)."""
MAX_FILE_FORMAT_VERSION = 10
"""``kMaxSupportedFileFormatVersion`` (caffe2/serialize/versions.h) of the torch releases ckptlint targets."""
_INT_PREFIX = rb"[+-]?(?:\d(?:_?\d)*_?)?\s*"
"""What can still begin an ``int()`` literal once leading whitespace is gone (the rest may complete it);
compiled (re's cache) for the first uninitialised alignment record, not at import (startup)."""


def stoull(text: bytes) -> int | None:
    r"""``std::stoull``'s number at the start of ``text``: ``int(re.match(rb"\s*[+-]?\d+", text).group())``,
    None where that does not match; without a regex compiled at import (every zip reads its version)."""
    s = text.lstrip()  # bytes.lstrip's whitespace is the bytes pattern's \s: [ \t\n\r\f\v]
    sign = 1 if s[:1] in (b"+", b"-") else 0
    digits = len(s) - sign - len(s[sign:].lstrip(b"0123456789"))
    return int(s[:sign + digits]) if digits else None


class TorchZipReading:
    """The records torch reads, and where it stops. A plain class (start-up: see :class:`Extracted`)."""

    __slots__ = (
        "cap",
        "data_pkl",
        "fails_after",
        "notes",
        "prefix",
        "read",
        "records",
        "refuses",
        "script",
        "sid_uninitialised",
    )

    def __init__(self, cap: int = 1 << 30) -> None:
        self.cap = cap
        """Most bytes produced for one record (``Limits.max_pickle_bytes``)."""
        self.prefix = b""
        self.refuses: str | None = None
        """torch.load raises here, before unpickling anything (its message, one line)."""
        self.fails_after: str | None = None
        """torch.load raises after unpickling ``data.pkl`` (the payload has run by then)."""
        self.script = False
        self.records: dict[str, bytes] = {}
        """Small records as torch reads them (``version``, ``byteorder`` …)."""
        self.read: dict[str, ZipMember] = {}
        """Record name -> the entry torch's lookup returns for it."""
        self.data_pkl: Extracted | None = None
        self.sid_uninitialised: str | None = None
        """``.data/serialization_id`` is partly memory nothing wrote (the extraction's note)."""
        self.notes: list[str] = []
        """Records torch reads whose content is unpredictable or cut (anomalies)."""

    def name(self, record: str) -> str:
        return (self.prefix + b"/").decode("utf-8", "replace") + record


class _Refused(Exception):
    """Internal: torch raises at this step."""


def read_like_torch(z: ZipArchive, cap: int) -> TorchZipReading:
    """Run torch.load's steps on ``z`` up to (not including) unpickling ``data.pkl``."""
    r = TorchZipReading(cap=cap)
    try:
        _init(z, r)
        _all_records(z, r)
        if not r.script:
            _load(z, r)
    except _Refused as e:
        r.refuses = str(e)
        return r
    sid = r.records.get(".data/serialization_id")
    if sid is not None and not r.script:
        try:  # `_log_api_usage_metadata(..., {"serialization_id": zip_file.serialization_id()})`, after unpickling
            sid.decode("utf-8")
        except UnicodeDecodeError as e:
            r.fails_after = f"UnicodeDecodeError: {e} (the .data/serialization_id record, read after unpickling)"
    elif r.sid_uninitialised is not None and not r.script:
        # pybind11 decodes the std::string, inflated bytes and the memory after them, as UTF-8: recycled heap
        # memory seldom is (fuzz seed 1 index 10781: UnicodeDecodeError on nearly every run)
        r.fails_after = (f"UnicodeDecodeError, unless uninitialised memory happens to be UTF-8: "
                         f"{r.sid_uninitialised} (the .data/serialization_id record, decoded after unpickling)")
    return r


def _lookup(z: ZipArchive, r: TorchZipReading, record: str) -> ZipMember | None:
    # archive_name_plus_slash_ + name, passed to miniz as a C string
    return z.locate(r.prefix + b"/" + record.encode())


def _get(z: ZipArchive, r: TorchZipReading, record: str) -> Extracted:
    """``getRecord``: lookup, stat, extract; raises _Refused where torch throws."""
    m = _lookup(z, r, record)
    if m is None:
        raise _Refused(f"PytorchStreamReader failed locating file {record}: file not found")
    r.read[record] = m
    problem = stat_error(m)
    if problem is not None:
        raise _Refused(f"PytorchStreamReader failed retrieving file meta-data for {record}: {problem}")
    rec = extract(z, m, r.cap, KEEP if record == "data.pkl" else SMALL_KEEP)
    if rec.error is not None:
        raise _Refused(f"PytorchStreamReader failed reading file {record}: {rec.error}")
    if rec.uninitialized or rec.note:
        r.notes.append(f"{m.name} (read by torch.load): {rec.note}")
    return rec


def _init(z: ZipArchive, r: TorchZipReading) -> None:
    if not z.members:
        raise _Refused("archive does not contain any files")
    first = z.members[0].raw_name
    slash = first.find(b"/")
    if slash < 0:
        raise _Refused(f"file in archive is not in a subdirectory: {first.decode('utf-8', 'replace')}")
    r.prefix = first[:slash]
    if _lookup(z, r, ".data/serialization_id") is not None:
        sid = _get(z, r, ".data/serialization_id")
        if not sid.uninitialized:
            r.records[".data/serialization_id"] = sid.data
        elif _invalid_utf8_prefix(sid.data):
            r.records[".data/serialization_id"] = sid.data  # fails on the inflated bytes alone
        else:
            r.sid_uninitialised = sid.note
    version_record = ".data/version" if _lookup(z, r, ".data/version") is not None else "version"
    if _lookup(z, r, version_record) is None:
        raise _Refused('Expected hasRecord("version") to be true, but got false')
    text = _get(z, r, version_record).data
    r.records["version"] = text
    version = stoull(text.split(b"\x00", 1)[0])
    if version is None:
        raise _Refused(f"Couldn't parse the version {text[:40].decode('utf-8', 'replace')} as Long Long")
    if version < 1:
        raise _Refused(f"Attempted to read a PyTorch file with version {version}, but the minimum supported "
                       "version for reading is 1")
    if version > MAX_FILE_FORMAT_VERSION:
        raise _Refused(f"Attempted to read a PyTorch file with version {version}, but the maximum supported "
                       f"version for reading is {MAX_FILE_FORMAT_VERSION}")


def _all_records(z: ZipArchive, r: TorchZipReading) -> None:
    want = r.prefix + b"/"
    plain = b"\x00" not in want  # then strncmp is startswith (the C string ends at its NUL)
    if plain and _common_records(z, r, want):
        return
    odd: list[bytes] = []  # the record names that are not ASCII: only these can fail to decode
    script = False
    for m in z.members:
        raw = m.raw_name
        # find, not `in` (see zipreader._entries): `bytes in bytes` raises and clears a TypeError each time
        c_name = raw if len(raw) <= 511 and raw.find(b"\x00") < 0 else raw[:511].split(b"\x00", 1)[0]
        if not (c_name.startswith(want) if plain else _strncmp_equal(c_name, want)):
            raise _Refused(f"file in archive is not in a subdirectory {want.decode('utf-8', 'replace')}: "
                           f"{c_name.decode('utf-8', 'replace')}")
        rest = c_name[len(want):]
        if not rest.endswith(b".debug_pkl"):
            if not rest.isascii():
                odd.append(rest)
            elif rest == b"constants.pkl":
                script = True
    for rest in odd:  # pybind11 hands the names to Python as str: strict UTF-8
        try:
            rest.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Refused(f"UnicodeDecodeError: 'utf-8' codec can't decode byte 0x{rest[e.start]:02x} in the "
                           f"record name {rest!r} (get_all_records)") from None
    r.script = script


def _common_records(z: ZipArchive, r: TorchZipReading, want: bytes) -> bool:
    """What the loop below finds for the common archive, in C over all names at once (100,000s of
    entries): every name under ``want``, no NUL, at most 511 bytes, all ASCII. False where any of that
    fails (the loop then decides, and names the entry torch raises on)."""
    names = z.raw_names
    blob = b"\x00".join(names)  # the names, NUL-separated: a NUL count beyond the separators is a name's own
    if blob.count(b"\x00") != len(names) - 1 or max(map(len, names), default=0) > 511 or not blob.isascii():
        return False
    # each of the n-1 separators followed by the prefix (want holds no NUL: matches cannot overlap)
    if not names or not names[0].startswith(want) or blob.count(b"\x00" + want) != len(names) - 1:
        return False
    r.script = want + b"constants.pkl" in names
    return True


def _invalid_utf8_prefix(data: bytes) -> bool:
    """Whether ``data`` already fails as UTF-8 (an incomplete last character could still be completed)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _strncmp_equal(c_name: bytes, want: bytes) -> bool:
    """``strncmp(buf, prefix_plus_slash.data(), prefix_plus_slash.size()) == 0``."""
    for i, b in enumerate(want):
        a = c_name[i] if i < len(c_name) else 0
        if a != b:
            return False
        if b == 0:
            return True
    return True


def _load(z: ZipArchive, r: TorchZipReading) -> None:
    if _lookup(z, r, ".format_version") is not None:
        r.records[".format_version"] = _get(z, r, ".format_version").data
    if _lookup(z, r, "byteorder") is not None:
        rec = _get(z, r, "byteorder")
        mark = rec.data
        r.records["byteorder"] = mark
        size = r.read["byteorder"].size
        if rec.uninitialized and any(w.startswith(mark) and len(w) == size for w in (b"little", b"big")):
            # `byteorderdata not in [b"little", b"big"]` over the whole buffer: memory nothing wrote follows
            raise _Refused(f"Unknown endianness type, unless uninitialised memory happens to complete "
                           f"{mark[:40]!r}: {rec.note}")
        if rec.uninitialized or mark not in (b"little", b"big"):
            raise _Refused(f"Unknown endianness type: {mark[:40].decode('utf-8', 'replace')}")
    if _lookup(z, r, ".storage_alignment") is not None:
        rec = _get(z, r, ".storage_alignment")
        align = rec.data
        r.records[".storage_alignment"] = align
        if rec.uninitialized and re.fullmatch(_INT_PREFIX, align.lstrip()):
            # `int(zip_file.get_record(".storage_alignment"))`: int() of the inflated bytes and the memory after
            # them, which holds digits or whitespace only by luck (fuzz seed 1 index 5861: b'7&')
            raise _Refused(f"ValueError: invalid literal for int(), unless uninitialised memory after "
                           f"{align[:40]!r} happens to be digits: {rec.note}")
        try:
            if rec.uninitialized:
                raise ValueError  # no bytes after this prefix make an int literal
            int(align)
        except ValueError:
            raise _Refused(f"invalid literal for int() with base 10: {align[:40]!r}") from None
    r.data_pkl = _get(z, r, "data.pkl")
