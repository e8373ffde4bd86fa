"""numpy ``.npy`` / ``.npz`` files: only arrays of Python objects hold a pickle.

``np.load(allow_pickle=True)`` runs ``pickle.load`` on the bytes after an object array's header
(numpy's ``format.read_array``), so such a file is a pickle in a numpy wrapper and is read as
one. An array of plain numbers holds no pickle: nothing in it can run code, and it is no torch
checkpoint either (a not-a-checkpoint kind, ``numpy``)."""

from __future__ import annotations

import struct
from typing import Any

from ..errors import CheckpointError, FormatError
from ..inventory import FormatFacts, Inventory
from ..limits import DEFAULT_LIMITS, Limits
from .common import Assembler, CountingFile
from .zipextract import inflated_prefix
from .zipreader import open_archive

NPY_MAGIC = b"\x93NUMPY"
PLAIN_NPY = "a numpy array of plain values (no pickled Python objects), not a checkpoint"
PLAIN_NPZ = "a numpy .npz archive of plain arrays (no pickled Python objects), not a checkpoint"
# torch.load reads the magic's \x93 as STACK_GLOBAL on an empty stack
TORCH_REFUSES = "UnpicklingError: unpickling stack underflow (numpy's \\x93NUMPY magic is no pickle)"
_BYTEORDER = "<>|="
MAX_HEADER = 1 << 20
"""numpy itself refuses headers over 10,000 bytes unless allow_pickle=True; ckptlint parses at most 1 MiB."""


def npy_header(head: bytes, max_header: int) -> tuple[bool, int]:
    """(object array?, offset of the data) from the start of a ``.npy`` stream, as numpy's
    ``read_array`` parses it; FormatError where numpy raises."""
    if head[:6] != NPY_MAGIC or len(head) < 10:
        raise FormatError("numpy .npy header cut short")
    major = head[6]
    if major == 1:
        (n,), start = struct.unpack_from("<H", head, 8), 10
    elif major in (2, 3):
        if len(head) < 12:
            raise FormatError("numpy .npy header cut short")
        (n,), start = struct.unpack_from("<I", head, 8), 12
    else:
        raise FormatError(f"numpy .npy format version {major}.{head[7]} (numpy reads 1.0 to 3.0)")
    if n > max_header:
        raise FormatError(f"numpy .npy header of {n} bytes (limit {max_header})")
    raw = head[start:start + n]
    if len(raw) < n:
        raise FormatError("numpy .npy header cut short")
    import ast  # what numpy's own header parser uses; only for .npy files (startup)

    try:
        d = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise FormatError("numpy .npy header is not a Python literal") from None
    if not isinstance(d, dict) or "descr" not in d:
        raise FormatError("numpy .npy header has no 'descr'")
    return _has_object(d["descr"]), start + n


def _has_object(descr: Any, depth: int = 0) -> bool:
    """``dtype.hasobject`` from a header's descr: a type string (``|O``, ``<f8``) or a list of fields
    ``(name, descr[, shape])``. Anything numpy may read as ``object`` counts."""
    if depth > 64:
        return True
    if isinstance(descr, str):
        s = descr.lstrip(_BYTEORDER)
        return s.startswith(("O", "object"))
    if isinstance(descr, (list, tuple)):
        return any(_has_object(field[1] if isinstance(field, tuple) and len(field) >= 2 else field, depth + 1)
                   for field in descr)
    return True  # no dtype numpy builds from a header: assume the worst


def read_npy(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """An object array's pickle is read as ``pickle.load`` reads it from the open file."""
    head = f.pread(0, 12 + _header_len(f.pread(0, 12), limits))
    has_object, start = npy_header(head, min(limits.max_header_bytes, MAX_HEADER))
    if not has_object:
        raise CheckpointError(path, PLAIN_NPY, "numpy")
    asm = Assembler(path, limits, budget=f.budget)
    value, _ = asm.parse_file_stream(f, start, "pickle#0", encoding="ASCII")
    structure = asm.collect(value, "pickle#0") if value is not None else None
    return asm.inventory(_facts(f, asm, ("pickle#0",), ()), structure)


def _header_len(head: bytes, limits: Limits) -> int:
    """The header length a ``.npy`` prefix declares, capped by ``max_header_bytes``."""
    n = int.from_bytes(head[8:10] if head[6:7] == b"\x01" else head[8:12], "little")
    return min(n, limits.max_header_bytes, MAX_HEADER)


def read_npz(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory | None:
    """Each ``.npy`` member holding objects is a pickle ``np.load(...)[key]`` runs. None when a
    member is not ``*.npy`` (``np.savez`` writes nothing else): the zip is read as torch's then."""
    z = open_archive(f, limits, f.budget)  # the file's one parse of its directory
    if not all(m.name.lower().endswith(".npy") for m in z.members):
        return None
    asm = Assembler(path, limits, budget=f.budget)
    loaded: list[str] = []
    names: list[str] = []
    for m in z.members:
        names.append(m.name)
        if m.method not in (0, 8):  # numpy reads bzip2/lzma members through zipfile; ckptlint does not
            raise FormatError(f"npz member {m.name!r}: compression method {m.method} is not read by ckptlint")
        head = inflated_prefix(z, m, 12)
        if head[:6] != NPY_MAGIC:
            continue  # np.load hands such a member back as raw bytes
        has_object, start = npy_header(inflated_prefix(z, m, 12 + _header_len(head, limits)),
                                       min(limits.max_header_bytes, MAX_HEADER))
        if has_object:
            loaded.append(m.name)
            data = z.read_member(m)
            asm.parse(data[start:], m.name, file_framing=False, encoding="ASCII", charged=True)
    if not loaded:
        raise CheckpointError(path, PLAIN_NPZ, "numpy")
    return asm.inventory(_facts(f, asm, tuple(loaded), tuple(names)), None)


def _facts(f: CountingFile, asm: Assembler, loaded: tuple[str, ...], entries: tuple[str, ...]) -> FormatFacts:
    return FormatFacts(
        format="pickle", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
        zip_entries=entries, streams=tuple(asm.streams), loaded_streams=loaded,
        opcodes=tuple(sorted(asm.opcodes)),
        extra={"numpy": "npz" if entries else "npy", "torch_refuses": TORCH_REFUSES},
    )
