"""Where a storage's bytes are, per container: the file itself, zip members, a tar's ``storages`` member.

Used by :class:`ckptlint.conversion.source.TensorSource`; each function reuses the reader's own pieces
(miniz's lookup and data offset, tarfile as torch drives it, the static unpickler for tar headers) so the
bytes found are the ones ``torch.load`` reads.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from ..errors import FormatError
from ..formats.common import Assembler, CountingFile
from ..formats.dtypes import ITEMSIZE
from ..formats.legacy import parse_stream
from ..formats.tar import TarFallback, TorchFails, TorchTar, extracted, load_members, open_torch_tar
from ..formats.zipextract import data_offset, stat_error
from ..formats.zipreader import ZipArchive
from ..inventory import Inventory, StorageRecord
from ..limits import Budget, Limits
from .dtypes import swap_unit

ZIP_FORMATS = ("torch-zip", "torchscript", "torch-export")


class Data(Protocol):
    """A storage's bytes: ``size`` of them, read with ``read(offset, n)``; ``swap`` > 1 when each group of that
    many bytes is reversed on the way out (a big-endian zip)."""

    size: int
    swap: int

    def read(self, offset: int, n: int) -> bytes: ...


class FileData:
    """A byte range of an open file (stored zip member, legacy/safetensors range, inflated temp file);
    ``path`` is set when the range lies as-is in the checkpoint file (a writer may copy it by kernel)."""

    def __init__(self, f: BinaryIO, path: str | None, start: int, size: int, swap: int) -> None:
        self.f, self.path, self.start, self.size, self.swap = f, path, start, size, swap

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > self.size:
            raise FormatError(f"read of {n} bytes at {offset} past the storage's {self.size}")
        self.f.seek(self.start + offset)
        data = self.f.read(n)
        if len(data) != n:
            raise FormatError(f"the file ends inside the storage ({len(data)} of {n} bytes at {offset})")
        return data


class PreadData:
    """A storage inside something with ``pread`` (a tar member, sparse maps included)."""

    def __init__(self, src: Any, start: int, size: int) -> None:
        self.src, self.start, self.size, self.swap = src, start, size, 1

    def read(self, offset: int, n: int) -> bytes:
        data: bytes = self.src.pread(self.start + offset, n)
        if offset < 0 or len(data) != n:
            raise FormatError(f"the tar member ends inside the storage ({len(data)} of {n} bytes at {offset})")
        return data


class Opened:
    """One checkpoint file opened for reading storages: its handles, and what locating found (cached)."""

    def __init__(self, path: str, inventory: Inventory, limits: Limits, base: int = 0,
                 span: int | None = None) -> None:
        self.path, self.inventory, self.limits = path, inventory, limits
        self.base = base
        """Where the checkpoint starts in ``path`` (a torch.save nested in a DCP ``.distcp`` file); offsets in
        the Inventory are relative to it."""
        self.span = span
        """The checkpoint's length from ``base`` (None: to the end of the file)."""
        self.storages: dict[str, StorageRecord] = {s.key: s for s in inventory.storages}
        self.files: list[BinaryIO] = []
        self._file: BinaryIO | None = None
        self.zip: ZipArchive | None = None
        self.tar: dict[str, tuple[int, int]] | None = None
        self.tar_member: Any = None

    def file(self) -> BinaryIO:
        """The checkpoint file, opened once."""
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
            self.files.append(self._file)
        return self._file

    def close(self) -> None:
        for f in self.files:
            f.close()
        self.files.clear()
        self._file = None
        self.tar_member = None


def locate(src: Opened, key: str) -> Data:
    """Where storage ``key``'s bytes are; FormatError (or OSError) when the file does not hold them."""
    st = src.storages.get(key)
    entry = st.entry if st is not None else None
    if entry is not None and entry.startswith("bytes "):
        lo, _, hi = entry[6:].partition("-")
        start, end = int(lo), int(hi)
        return FileData(src.file(), src.path, src.base + start, end - start, 1)
    if src.inventory.format in ZIP_FORMATS and entry is not None and st is not None:
        return zip_storage(src, entry, st)
    if src.inventory.format == "torch-tar":
        return tar_storage(src, key)
    raise FormatError("no byte location for it in the file")


_INFLATE_PIECE = 4 << 20


def zip_storage(src: Opened, entry: str, st: StorageRecord) -> Data:
    """The zip member torch reads for ``entry`` (miniz's case-insensitive lookup, local header offset)."""
    if src.zip is None:
        raw = open(src.path, "rb", buffering=0)  # noqa: SIM115 - closed by Opened.close
        src.files.append(raw)  # unbuffered: a local header is 30 bytes, not a buffer's 8 KiB, per storage
        size = os.fstat(raw.fileno()).st_size - src.base if src.span is None else src.span
        src.zip = ZipArchive(_reader(raw, src.base), size, src.limits, Budget(src.limits))
    z = src.zip
    m = z.locate(entry)
    if m is None:
        raise FormatError(f"zip member {entry!r} not found (torch: file not found)")
    problem = stat_error(m)
    if problem is not None:
        raise FormatError(f"zip member {m.name!r}: {problem}")
    big = src.inventory.format == "torch-zip" and src.inventory.facts.byteorder == "big"
    swap = swap_unit(st.dtype) if big else 1
    if m.size == 0:
        return FileData(src.file(), None, 0, 0, swap)
    if m.is_directory or m.compressed_size == 0:
        raise FormatError(f"zip member {m.name!r}: miniz extracts nothing, torch reads uninitialised memory")
    start = data_offset(z, m)
    if start + m.compressed_size > z.file_size or (m.method == 0 and start + m.size > z.file_size):
        raise FormatError(f"zip member {m.name!r} runs past the end of the file")
    if m.method == 0:
        return FileData(src.file(), src.path, src.base + start, m.size, swap)
    tmp = _inflate(z, m.name, start, m.compressed_size, m.size)
    src.files.append(tmp)
    return FileData(tmp, None, 0, m.size, swap)


def _reader(f: BinaryIO, base: int = 0) -> Callable[[int, int], bytes]:
    """``read(offset, n)`` on an unbuffered file from ``base`` on: up to ``n`` bytes (fewer only at the end)."""
    def read(offset: int, n: int) -> bytes:
        f.seek(base + offset)
        out = b""
        while len(out) < n:
            piece = f.read(n - len(out))
            if not piece:
                break
            out += piece
        return out
    return read


def _inflate(z: ZipArchive, name: str, start: int, csize: int, size: int) -> BinaryIO:
    """A deflated member inflated into a temporary file as miniz does: the first ``size`` bytes of the
    stream; one that ends early or is corrupt is torch's error (it reads memory nothing wrote)."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed by TensorSource.close
    d = zlib.decompressobj(-15)
    produced = pos = 0
    try:
        while produced < size:
            if d.unconsumed_tail:
                chunk = d.unconsumed_tail
            elif pos < csize:
                chunk = z.read_at(start + pos, min(_INFLATE_PIECE, csize - pos))
                pos += len(chunk)
            else:
                chunk = b""
            out = d.decompress(chunk, min(size - produced, _INFLATE_PIECE))
            if not out and not chunk:
                break
            tmp.write(out)
            produced += len(out)
            if d.eof:
                break
    except zlib.error as e:
        tmp.close()
        raise FormatError(f"zip member {name!r}: corrupt deflate stream after {produced} bytes ({e}): torch "
                          "reads uninitialised memory past it") from None
    if produced < size:
        tmp.close()
        raise FormatError(f"zip member {name!r}: the deflate stream gives {produced} of {size} bytes")
    tmp.flush()
    return tmp


def tar_storage(src: Opened, key: str) -> Data:
    """A storage inside an old torch tar's ``storages`` member: after its header pickle and 8-byte count."""
    if src.tar is None:
        src.tar = _tar_offsets(src)
    where = src.tar.get(key)
    if where is None:
        raise FormatError("not found in the tar's storages member")
    return PreadData(src.tar_member, *where)


def _tar_offsets(src: Opened) -> dict[str, tuple[int, int]]:
    """Walk ``storages`` as torch does (count pickle; per storage a ``(key, location, type)`` pickle, an
    int64 element count, the bytes), with the reader's static unpickler: key -> (offset, nbytes)."""
    f = CountingFile(src.path, src.limits)
    src.files.append(f.f)
    try:
        tar = open_torch_tar(f, f.budget)
        if tar is None:
            raise FormatError("tarfile cannot open the file")
        tt = TorchTar(tar, load_members(tar, f.budget), f.budget)
        sf = extracted(tt, f, f.budget, "storages", {})
    except (TorchFails, TarFallback, KeyError, tarfile.TarError) as e:
        raise FormatError(f"the tar's storages member cannot be read as torch reads it ({e})") from None
    src.tar_member = sf
    asm = Assembler(src.path, src.limits, budget=f.budget)
    count, off, stopped = parse_stream(asm, sf, 0, "storages#0", None, peek=False)
    out: dict[str, tuple[int, int]] = {}
    if stopped or type(count) is not int:
        return out
    for i in range(count):
        args, off, stopped = parse_stream(asm, sf, off, f"storages#{i + 1}", None, peek=False)
        if stopped or not isinstance(args, (tuple, list)) or len(args) != 3:
            break
        label = args[0] if isinstance(args[0], str) else repr(args[0])[:100]
        st = src.storages.get(f"tar:{label}")
        head = sf.pread(off, 8)
        if st is None or len(head) < 8:
            break
        nbytes = int.from_bytes(head, "little", signed=True) * ITEMSIZE.get(st.dtype, 1)
        out.setdefault(st.key, (off + 8, nbytes))
        off += 8 + nbytes
    return out
