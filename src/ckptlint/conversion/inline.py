"""Storages inside a raw pickle: ``pickle.dump(tensor)`` writes each storage as ``_load_from_bytes(b)``,
``b`` being a whole legacy ``torch.save`` of that storage, held in the pickle as a bytes opcode.

The reader names such a storage ``inline:<crc32>:<length>`` (formats.torchcalls). Here the pickle's opcodes
are walked (skipped over, never executed, never held: a bytes argument is only located) to find the bytes
opcode with that length and CRC-32, and the nested legacy file is read with the reader's own legacy reading,
which says the storage's dtype and where its elements lie.
"""

from __future__ import annotations

import codecs
import os
import pickletools
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from ..errors import FormatError
from ..formats.common import CountingFile
from ..formats.legacy import read_pickle_file
from ..formats.tar import MemberFile
from ..limits import Limits

Read = Callable[[int, int], bytes]

_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_TEXT_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
"""Protocols 1-2 pickle bytes as ``_codecs.encode(text, "latin1")``: the text's code points are the bytes (UTF-8
in these opcodes; protocol 0 writes the text with UNICODE, raw-unicode-escape up to a newline)."""
_LENGTH = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
           pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
_CRC_PIECE = 1 << 20
_OPS = {op.code: op for op in pickletools.opcodes}


def bytes_args(read: Read, size: int, start: int = 0) -> Iterator[tuple[int, int, str]]:
    """(offset, length, encoding) of every bytes argument (encoding ``""``) and text argument (``utf-8``, or
    ``raw_unicode_escape`` for protocol 0's UNICODE) in the pickles from ``start`` on (one after another, until
    the file ends or an opcode is not one), without reading any argument's content."""
    pos = start
    while pos < size:
        head = read(pos, 1)
        op = _OPS.get(head.decode("latin-1")) if head else None
        if op is None:
            return
        pos += 1
        arg = op.arg
        if arg is None:
            continue
        if arg.n >= 0:
            pos += arg.n
        elif arg.n == pickletools.UP_TO_NEWLINE:
            line = pos
            for _ in range(2 if arg.name == "stringnl_noescape_pair" else 1):
                pos = _after_newline(read, size, pos)
            if op.name == "UNICODE":
                yield line, pos - line - 1, "raw_unicode_escape"
        elif arg.n in _LENGTH:
            width, signed = _LENGTH[arg.n]
            raw = read(pos, width)
            if len(raw) < width:
                return
            length = int.from_bytes(raw, "little", signed=signed)
            if length < 0:
                return
            if op.name in _BYTES_OPS or op.name in _TEXT_OPS:
                yield pos + width, length, "utf-8" if op.name in _TEXT_OPS else ""
            pos += width + length
        else:
            return


def _after_newline(read: Read, size: int, pos: int) -> int:
    while pos < size:
        block = read(pos, 4096)
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        if not block:
            break
        pos += len(block)
    return size


class _Blocks:
    """``read(offset, n)`` over a file through one 64 KiB block: the opcode walk reads a byte at a time."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.at, self.block = f, 0, b""

    def read(self, offset: int, n: int) -> bytes:
        if self.at <= offset and offset + n <= self.at + len(self.block):
            return self.block[offset - self.at:offset - self.at + n]
        if n > 1 << 16:
            self.f.seek(offset)
            return self.f.read(n)
        self.f.seek(offset)
        self.at, self.block = offset, self.f.read(1 << 16)
        return self.block[:n]


def arguments(path: str) -> list[tuple[int, int, str]]:
    """Every bytes/text argument of the pickle file ``path`` (see :func:`bytes_args`)."""
    with open(path, "rb") as f:
        return list(bytes_args(_Blocks(f).read, os.fstat(f.fileno()).st_size))


def find_inline(read: Read, size: int, key: str,
                args: list[tuple[int, int, str]] | None = None) -> tuple[int, int, str] | None:
    """Where the bytes the storage key ``inline:<crc32>:<length>`` names lie in the file: (offset, length in
    the file, encoding); text (protocols 0-2) is latin-1 bytes written as UTF-8 or raw-unicode-escape."""
    try:
        _, crc_hex, length_s = key.split(":")
        crc, length = int(crc_hex, 16), int(length_s)
    except ValueError:
        return None
    for offset, n, text in bytes_args(read, size) if args is None else args:
        widest = {"": 1, "utf-8": 2}.get(text, 6)  # raw-unicode-escape: \\u005c for a backslash
        if offset + n > size or not (length <= n <= widest * length):
            continue
        c = produced = 0
        for piece in _pieces(read, offset, n, text):
            c = zlib.crc32(piece, c)
            produced += len(piece)
        if c == crc and produced == length:
            return offset, n, text
    return None


def _pieces(read: Read, offset: int, n: int, text: str) -> Iterator[bytes]:
    """The bytes a bytes argument holds, or a text argument's code points as bytes, in pieces."""
    decoder = codecs.getincrementaldecoder(text or "latin-1")("strict")
    for at in range(0, n, _CRC_PIECE):
        raw = read(offset + at, min(_CRC_PIECE, n - at))
        if not text:
            yield raw
            continue
        try:
            yield decoder.decode(raw, at + len(raw) >= n).encode("latin-1")
        except (UnicodeDecodeError, UnicodeEncodeError):
            return


def inline_storage(path: str, key: str, limits: Limits,
                   args: list[tuple[int, int, str]]) -> tuple[str, BinaryIO | None, int, int]:
    """(dtype, the file holding its bytes (None: ``path`` itself; else a temporary file with decoded text),
    offset, nbytes) of the one storage the nested ``torch.save`` named ``key`` holds; ``args`` is
    :func:`arguments` of the file (walked once for all its storages)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size

        def read(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        where = find_inline(read, size, key, args)
        if where is None:
            raise FormatError("its bytes are nowhere in the pickle as a bytes or text argument")
        offset, n, text = where
        if not text:
            dtype, start, nbytes = _nested(path, offset, n, limits)
            return dtype, None, start, nbytes
        tmp = tempfile.NamedTemporaryFile(prefix="ckptlint-inline-")  # noqa: SIM115 - the caller closes it
        try:
            for piece in _pieces(read, offset, n, text):
                tmp.write(piece)
            tmp.flush()
            length = tmp.tell()
            dtype, start, nbytes = _nested(tmp.name, 0, length, limits)
        except BaseException:
            tmp.close()
            raise
        return dtype, cast(BinaryIO, tmp), start, nbytes


def _nested(path: str, offset: int, length: int, limits: Limits) -> tuple[str, int, int]:
    """(dtype, absolute offset, nbytes) of the one storage a nested legacy ``torch.save`` at ``offset`` holds."""
    cf = CountingFile(path, limits)
    try:
        inner = MemberFile(cf, cf.budget, "inline storage", length, [(0, length, offset)])
        inv = read_pickle_file(inner, path, limits)
    finally:
        cf.close()
    if inv.stops:
        raise FormatError(f"loading the nested torch.save fails as torch's does: {inv.stops[0].reason}")
    if inv.format != "torch-legacy":
        raise FormatError("the nested bytes are not a legacy torch.save")
    located = [s for s in inv.storages if s.entry and s.entry.startswith("bytes ")]
    if len(located) != 1:
        raise FormatError(f"the nested torch.save holds {len(located)} storages, not one")
    st = located[0]
    assert st.entry is not None
    lo, _, hi = st.entry[6:].partition("-")
    return st.dtype, offset + int(lo), int(hi) - int(lo)
