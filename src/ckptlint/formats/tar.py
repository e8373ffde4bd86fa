"""The PyTorch 0.1 tar container, opened exactly as ``torch.load`` opens it.

torch (``serialization._legacy_load``) calls ``tarfile.open(fileobj=f, mode="r:",
format=tarfile.PAX_FORMAT)`` on every non-zip file. Whether that succeeds
decides the path: a ``tarfile.TarError`` falls back to the legacy pickle reader,
any other exception ends ``torch.load``. So the headers are parsed by the
interpreter's own ``tarfile`` (V7 headers without ``ustar``, GNU longname and
longlink, PAX headers, GNU and PAX sparse maps, checksums, member order), never
by a look-alike: the decision is the same by construction. What we add is
bounds (every byte ``tarfile`` reads and every member is charged to the file's
budget) and member *data* views that read only what is parsed — for the
members torch extracts to disk, with ``TarFile.makefile``'s semantics (sparse
chunks written in map order over zero-filled holes, then truncated to the
member size; data short of the file end is a ``ReadError``).
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
import sys
import tarfile
from typing import Any

from ..errors import FormatError, LimitExceeded
from ..limits import Budget
from ..record import record
from .common import CountingFile

_COPY_BUFSIZE = 16 * 1024
"""``tarfile.copyfileobj``'s block size when ``TarFile.copybufsize`` is None."""
_MAX_SPARSE_OVERLAPS = 4096
"""A sparse map whose chunks overlap is resolved chunk by chunk on every read; beyond this many it is a limit."""


class TarFallback(Exception):
    """A ``tarfile.TarError`` where torch catches it: torch re-reads the file as a legacy pickle."""


class TorchFails(Exception):
    """Something that makes ``torch.load`` raise (or hang) on this path; the message says what."""


class OutsideFile(TorchFails):
    """torch reads a file of the loading machine (a link out of the archive): its content is unknown."""


class _MeteredFile(io.RawIOBase):
    """The checkpoint as ``tarfile`` sees it; every byte it reads is charged to the file's budget."""

    def __init__(self, f: CountingFile, budget: Budget) -> None:
        super().__init__()
        self._f = f
        self._budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._f.size - self._f.f.tell())
        n = left if n is None or n < 0 else min(n, left)
        # charged before reading: a longname or PAX record may claim gigabytes
        self._budget.charge_bytes(n, "tar headers and member data read for parsing")
        data = self._f.f.read(n)
        self._f.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.f.tell()


@record(frozen=False)
class TorchTar:
    """A file ``tarfile.open`` accepted, with its members read as ``TarFile.getmember`` reads them."""

    tar: tarfile.TarFile
    members: list[tarfile.TarInfo]
    source_budget: Budget

    def getmember(self, name: str) -> tarfile.TarInfo:
        """``TarFile.getmember``: the *last* member of that exact name (KeyError when none)."""
        name = name.rstrip("/")
        for m in reversed(self.members):
            if m.name == name:
                return m
        raise KeyError(f"filename {name!r} not found")

    def find_link_target(self, m: tarfile.TarInfo) -> tarfile.TarInfo:
        """``TarFile._find_link_target``: symlinks search the whole archive, hard links the members before."""
        if m.issym():
            linkname = "/".join(filter(None, (os.path.dirname(m.name), m.linkname)))
            pool = self.members
        else:
            linkname = m.linkname
            # the members before it; a filtered copy is found by its header offset, as tarfile does
            at = next((i for i, c in enumerate(self.members) if c is m or c.offset == m.offset), len(self.members))
            pool = self.members[:at]
        want = os.path.normpath(linkname)
        for cand in reversed(pool):
            if os.path.normpath(cand.name) == want:
                return cand
        raise KeyError(f"linkname {linkname!r} not found")


def open_torch_tar(f: CountingFile, budget: Budget) -> tarfile.TarFile | None:
    """``tarfile.open`` as torch calls it: the TarFile, or None when it raises TarError.

    Any other exception is what ``torch.load`` raises on this file: :class:`TorchFails`."""
    src = _MeteredFile(f, budget)
    src.seek(0)
    try:
        return tarfile.open(fileobj=src, mode="r:", format=tarfile.PAX_FORMAT)
    except tarfile.TarError:
        return None
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever tarfile raises, torch.load raises it too
        raise TorchFails(f"tarfile raises {type(e).__name__}: {e}".splitlines()[0]) from None


def is_tar(f: CountingFile, budget: Budget | None = None) -> bool:
    """Whether ``torch.load`` takes the tar path: ``tarfile.open`` does not raise TarError.

    No ``ustar`` magic is needed (V7 headers count); a bad checksum is not a tar."""
    b = budget or getattr(f, "budget", None)
    try:
        return open_torch_tar(f, b if isinstance(b, Budget) else Budget()) is not None
    except TorchFails:
        return True
    except LimitExceeded:
        raise  # a header bigger than the budget: the limit is the answer, not "not a tar"
    except (FormatError, OSError):
        return False


def load_members(tar: tarfile.TarFile, budget: Budget) -> list[tarfile.TarInfo]:
    """``TarFile._load`` (what ``getmember`` runs first): every member, charged to the budget.

    A TarError here (a member's data runs past the end, a bad header after a
    longname/PAX header) is :class:`TarFallback`: torch catches it."""
    members: list[tarfile.TarInfo] = []
    while True:
        try:
            m = tar.next()
        except tarfile.TarError as e:
            raise TarFallback(f"tarfile raises {type(e).__name__} reading the members: {e}") from None
        except FormatError:
            raise
        except RecursionError:
            raise TorchFails("tarfile raises RecursionError reading the members") from None
        except Exception as e:  # noqa: BLE001
            raise TorchFails(f"tarfile raises {type(e).__name__} reading the members: {e}") from None
        if m is None:
            return members
        budget.charge_members()
        members.append(m)
        if len(members) > _max_tar_members(budget):
            raise LimitExceeded("max_tar_members", _max_tar_members(budget), "tar members (tarfile reads ~10k/s)")


def _max_tar_members(budget: Budget) -> int:
    """tarfile parses ~10,000 headers a second: a tar gets its own member bound (torch's have four)."""
    return int(getattr(budget.limits, "max_tar_members", DEFAULT_MAX_TAR_MEMBERS))


DEFAULT_MAX_TAR_MEMBERS = 50_000
"""Until ``Limits.max_tar_members`` exists: 50,000 headers is about 5 s of tarfile and 50 MB."""


class _MemberReader(CountingFile):
    """The file interface torch's unpickler uses, over a subclass's ``pread`` (which clamps at the end)."""

    size: int
    _pos: int

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else (self._pos + offset if whence == 1 else self.size + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        # pread stops at the member's end, which an extracted member may learn only while reading
        data = self.pread(self._pos, (1 << 62) if n < 0 else n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        pass


class MemberFile(_MemberReader):
    """A member's bytes as torch reads them, with the reader interface of :class:`CountingFile`.

    ``chunks`` are (position in the member, length, position in the file) in
    write order; later chunks win where they overlap, gaps read as zeros."""

    def __init__(self, src: CountingFile, budget: Budget, name: str, size: int,
                 chunks: list[tuple[int, int, int]]) -> None:
        # deliberately not CountingFile.__init__: nothing is opened, reads go to ``src``
        self.src = src
        self.budget = budget
        self.name = name
        self.size = max(0, size)
        self.bytes_read = 0
        self._pos = 0
        self._chunks = [c for c in chunks if c[1] > 0 and c[0] < self.size]
        self._starts: list[int] = []
        self._disjoint = _flatten(self._chunks)
        if self._disjoint is not None:
            self._starts = [c[0] for c in self._disjoint]
        elif len(self._chunks) > _MAX_SPARSE_OVERLAPS:  # each read walks them all: bounded, and said so
            raise LimitExceeded("max_tar_members", _MAX_SPARSE_OVERLAPS, f"overlapping sparse chunks in {name}")

    def pread(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        out = bytearray(n)
        end = offset + n
        if self._disjoint is not None:
            i = max(0, bisect.bisect_right(self._starts, offset) - 1)
            spans = self._disjoint[i:]
        else:
            spans = self._chunks
        for pos, length, src in spans:
            if pos >= end:
                if self._disjoint is not None:
                    break
                continue
            lo, hi = max(pos, offset), min(pos + length, end)
            if lo < hi:
                out[lo - offset:hi - offset] = self.src.pread(src + lo - pos, hi - lo)
        self.bytes_read += n  # charged by the Assembler that parses these bytes
        return bytes(out)


def _flatten(chunks: list[tuple[int, int, int]]) -> list[tuple[int, int, int]] | None:
    """The chunks sorted, when none overlaps another (the normal case); None otherwise."""
    s = sorted(chunks)
    for a, b in itertools.pairwise(s):
        if a[0] + a[1] > b[0]:
            return None
    return s


def _copied(length: int, bufsize: int) -> int:
    """Bytes ``tarfile.copyfileobj(src, dst, length)`` moves (a negative length still moves its remainder)."""
    if length == 0:
        return 0
    blocks, remainder = divmod(length, bufsize)
    return max(blocks, 0) * bufsize + remainder


def extracted(tt: TorchTar, f: CountingFile, budget: Budget, name: str,
              on_disk: dict[str, MemberFile]) -> MemberFile:
    """What ``open(tmpdir/name)`` reads after torch's ``tar.extract(name, path=tmpdir)``.

    ``on_disk`` holds what torch extracted before (``storages`` when extracting
    ``tensors``). Raises KeyError when there is no such member (torch raises it
    too), :class:`TarFallback` for a TarError, :class:`TorchFails` otherwise."""
    m = _filtered(tt.getmember(name))
    return _extract_member(tt, f, budget, m, name, on_disk, depth=0)


def _filtered(m: tarfile.TarInfo) -> tarfile.TarInfo:
    """The interpreter's default extraction filter (fully trusted before 3.14, ``data`` since)."""
    filt: Any = getattr(tarfile.TarFile, "extraction_filter", None)  # 3.12+, backported to 3.11.4 and 3.10.12
    if filt is None:
        filt = getattr(tarfile, "data_filter", None) if sys.version_info >= (3, 14) else None
    if filt is None:
        return m
    try:
        out = filt(m, "/nonexistent-ckptlint-extraction-dir")
    except tarfile.TarError as e:
        raise TarFallback(f"the extraction filter refuses {m.name!r}: {e}") from None
    except OSError as e:
        raise TorchFails(f"extracting {m.name!r}: {e}") from None
    if out is None:
        raise TorchFails(f"the extraction filter skips {m.name!r}, so torch cannot open it")
    return out  # type: ignore[no-any-return]


def _extract_member(tt: TorchTar, f: CountingFile, budget: Budget, m: tarfile.TarInfo, name: str,
                    on_disk: dict[str, MemberFile], depth: int) -> MemberFile:
    if depth > 64:
        raise TorchFails(f"{name}: links nested too deep")
    if m.isreg() or m.type not in tarfile.SUPPORTED_TYPES:
        return _makefile(tt, f, budget, m, name)
    if m.isdir():
        raise TorchFails(f"{name} is a directory in the archive: torch cannot open it as a file")
    if m.isfifo() or m.ischr() or m.isblk():
        raise TorchFails(f"{name} is a device or fifo in the archive: torch blocks or fails opening it")
    if m.issym() or m.islnk():
        # makelink: the link is made in torch's temporary folder; what it reaches there is
        # a member extracted before, or a file on the loading machine.
        target = os.path.normpath(m.linkname)
        if target in on_disk and not os.path.isabs(m.linkname):
            return on_disk[target]
        outside = os.path.isabs(m.linkname) or target == ".." or target.startswith("../")
        if m.issym() and not outside:
            raise TorchFails(f"{name} is a symbolic link to {m.linkname!r}, which torch's temporary folder "
                             "does not hold")
        if outside:
            raise OutsideFile(f"tar member {name!r} is a link to {m.linkname!r} outside the archive: torch.load "
                              "reads that file of the loading machine instead (its content is not in this file)")
        try:
            linked = tt.find_link_target(m)
        except KeyError:
            raise TorchFails(f"{name}: hard link to {m.linkname!r}, which is not in the archive") from None
        return _extract_member(tt, f, budget, linked, name, on_disk, depth + 1)
    return _makefile(tt, f, budget, m, name)


def _makefile(tt: TorchTar, f: CountingFile, budget: Budget, m: tarfile.TarInfo, name: str) -> MemberFile:
    """``TarFile.makefile``: sparse chunks copied in map order, then truncated to the member size."""
    bufsize: int = getattr(tt.tar, "copybufsize", None) or _COPY_BUFSIZE
    src: int = m.offset_data
    chunks: list[tuple[int, int, int]] = []
    sparse: list[tuple[int, int]] | None = getattr(m, "sparse", None)
    if sparse is not None:
        budget.charge_members(len(sparse))
        for offset, size in sparse:
            if offset < 0:
                raise TorchFails(f"{name}: sparse chunk at a negative offset")
            n = _copied(size, bufsize)
            chunks.append((offset, n, src))
            src += n
    else:
        n = _copied(m.size, bufsize)
        chunks.append((0, n, src))
        src += n
    if src > f.size:
        raise TarFallback(f"member {name!r} runs past the end of the file (tarfile: unexpected end of data)")
    return MemberFile(f, budget, name, m.size, chunks)


class ExtractedFile(_MemberReader):
    """``tar.extractfile(name)`` as torch's unpickler reads it, read lazily and in order.

    Reads go through tarfile's own member file object (sparse holes as zeros),
    so the bytes are tarfile's; a ReadError (data past the end of the file) sets
    ``truncated`` and ends the data there: torch's unpickler gets that error."""

    def __init__(self, fobj: Any, budget: Budget, name: str, size: int) -> None:
        # deliberately not CountingFile.__init__: nothing is opened here
        self._fobj = fobj
        self.budget = budget
        self.name = name
        self.size = size
        self.bytes_read = 0
        self.truncated = False
        self._buf = bytearray()
        self._pos = 0

    def _fill(self, end: int) -> None:
        """Read on in the 8 KiB blocks torch's buffered reader asks tarfile for: a block that runs past
        the end of the file raises as a whole, so the unpickler never sees its first bytes either."""
        end = min(end, self.size)
        if end > len(self._buf):  # holes read as zeros cost nothing on disk: charge what is materialised
            self.budget.charge_bytes(end - len(self._buf), f"tar member {self.name}")
        while len(self._buf) < end and not self.truncated:
            try:
                block = self._fobj.read(io.DEFAULT_BUFFER_SIZE)
            except tarfile.TarError:
                self.truncated = True
                self.size = len(self._buf)
                return
            except (OSError, ValueError) as e:
                raise TorchFails(f"reading {self.name!r}: {type(e).__name__}: {e}") from None
            if not block:
                self.size = len(self._buf)
                return
            self._buf += block

    def pread(self, offset: int, n: int) -> bytes:
        self._fill(offset + n)
        data = bytes(self._buf[offset:offset + n])
        self.bytes_read += len(data)
        return data


def extractfile(tt: TorchTar, name: str) -> ExtractedFile:
    """``tar.extractfile(name)`` (links followed as tarfile follows them)."""
    try:
        fobj = tt.tar.extractfile(name)
    except RecursionError:
        raise TorchFails(f"{name}: a symlink loop (tarfile raises RecursionError)") from None
    except KeyError as e:
        raise TorchFails(f"tarfile raises KeyError: {e}") from None
    except tarfile.TarError as e:
        raise TarFallback(f"tarfile raises {type(e).__name__} opening {name!r}: {e}") from None
    if fobj is None:
        raise TorchFails(f"{name} is not a regular file in the archive: tarfile gives torch no file to unpickle")
    return ExtractedFile(fobj, tt.source_budget, name, int(getattr(getattr(fobj, "raw", None), "size", 0)))
