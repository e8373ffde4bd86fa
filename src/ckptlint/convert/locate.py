"""Where a storage's bytes are, per container: zip members, tar ``storages`` offsets, shards.

Used by :class:`ckptlint.convert.source.TensorSource`; each function reuses the reader's own pieces
(miniz's lookup and data offset, tarfile as torch drives it, the static unpickler for tar headers) so the
bytes found are the ones ``torch.load`` reads.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zlib
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import CheckpointError, FormatError
from ..formats.common import Assembler, CountingFile
from ..formats.dtypes import ITEMSIZE
from ..formats.legacy import parse_stream
from ..formats.tar import TarFallback, TorchFails, TorchTar, extracted, load_members, open_torch_tar
from ..formats.zipextract import data_offset, stat_error
from ..formats.zipreader import ZipArchive
from ..inventory import StorageRecord
from .dtypes import swap_unit

if TYPE_CHECKING:
    from .source import TensorSource, _Data

_INFLATE_PIECE = 4 << 20


def zip_storage(src: TensorSource, entry: str, st: StorageRecord) -> _Data:
    """The zip member torch reads for ``entry`` (miniz's case-insensitive lookup, local header offset)."""
    from .source import _FileData

    if src._zip is None:
        cf = CountingFile(src.path, src.limits)
        src._files.append(cf.f)
        src._zip = ZipArchive(cf.pread, cf.size, src.limits, cf.budget)
    z: ZipArchive = src._zip
    m = z.locate(entry)
    if m is None:
        raise FormatError(f"zip member {entry!r} not found (torch: file not found)")
    problem = stat_error(m)
    if problem is not None:
        raise FormatError(f"zip member {m.name!r}: {problem}")
    big = src.inventory.format == "torch-zip" and src.inventory.facts.byteorder == "big"
    swap = swap_unit(st.dtype) if big else 1
    if m.size == 0:
        return _FileData(src._open(), None, 0, 0, swap)
    if m.is_directory or m.compressed_size == 0:
        raise FormatError(f"zip member {m.name!r}: miniz extracts nothing, torch reads uninitialised memory")
    start = data_offset(z, m)
    if start + m.compressed_size > z.file_size or (m.method == 0 and start + m.size > z.file_size):
        raise FormatError(f"zip member {m.name!r} runs past the end of the file")
    if m.method == 0:
        return _FileData(src._open(), src.path, start, m.size, swap)
    tmp = _inflate(z, m.name, start, m.compressed_size, m.size)
    src._files.append(tmp)
    return _FileData(tmp, None, 0, m.size, swap)


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


def tar_storage(src: TensorSource, key: str) -> _Data:
    """A storage inside an old torch tar's ``storages`` member: after its header pickle and 8-byte count."""
    from .source import _PreadData

    if src._tar is None:
        src._tar = _tar_offsets(src)
    where = src._tar.get(key)
    if where is None:
        raise FormatError("not found in the tar's storages member")
    return _PreadData(src._tar_member, *where)


def _tar_offsets(src: TensorSource) -> dict[str, tuple[int, int]]:
    """Walk ``storages`` as torch does (count pickle; per storage a ``(key, location, type)`` pickle, an
    int64 element count, the bytes), with the reader's static unpickler: key -> (offset, nbytes)."""
    f = CountingFile(src.path, src.limits)
    src._files.append(f.f)
    try:
        tar = open_torch_tar(f, f.budget)
        if tar is None:
            raise FormatError("tarfile cannot open the file")
        tt = TorchTar(tar, load_members(tar, f.budget), f.budget)
        sf = extracted(tt, f, f.budget, "storages", {})
    except (TorchFails, TarFallback, KeyError, tarfile.TarError) as e:
        raise FormatError(f"the tar's storages member cannot be read as torch reads it ({e})") from None
    src._tar_member = sf
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
        st = src._storages.get(f"tar:{label}")
        head = sf.pread(off, 8)
        if st is None or len(head) < 8:
            break
        nbytes = int.from_bytes(head, "little", signed=True) * ITEMSIZE.get(st.dtype, 1)
        out.setdefault(st.key, (off + 8, nbytes))
        off += 8 + nbytes
    return out


def shard_source(src: TensorSource, storage_key: str) -> tuple[TensorSource, str]:
    """The source of the shard a sharded Inventory's ``<shard>:<key>`` storage key names, and ``key``."""
    from ..formats import read_inventory
    from .source import TensorSource

    shards: Any = src.inventory.facts.extra.get("shards") or {}
    for shard in sorted(shards, key=len, reverse=True):
        if not storage_key.startswith(f"{shard}:"):
            continue
        sub = src._shards.get(shard)
        if sub is None:
            path = os.path.join(os.path.dirname(os.path.abspath(src.path)), shard)
            try:
                inv = read_inventory(path, src.limits)
            except CheckpointError as e:
                raise FormatError(f"shard {shard}: {e.reason}") from None
            sub = src._shards[shard] = TensorSource(path, inv, src.limits)
        return sub, storage_key[len(shard) + 1:]
    raise FormatError(f"storage {storage_key!r} names no shard of the index")
