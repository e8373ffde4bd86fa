"""A torch.distributed.checkpoint folder's tensors: each one a ``torch.save`` nested in a ``.distcp`` file.

``.metadata`` (read with the static unpickler, as formats.dcp reads it) maps each ``MetadataIndex(fqn, offset,
index)`` to a ``_StorageInfo(relative_path, offset, length)``; with DCP's default serialization the bytes there
are a whole torch zip of that tensor (chunk), read in place by the torch zip reader (:class:`_SpanFile` shows it
the byte range as a file). A tensor saved from several ranks is several chunks that tile it; :class:`Chunked`
writes their elements in the whole tensor's C order (a run of whole chunks where they split one dimension, else
row by row). A chunk stored through transforms (compression) is refused by name.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..formats.common import Assembler, CountingFile
from ..formats.stubs import Call
from ..formats.torchzip import read_torch_zip
from ..inventory import Inventory, TensorRecord
from ..limits import Limits
from ..record import record, replace


@record
class Item:
    """Where one chunk of a tensor lies: ``length`` bytes at ``offset`` of ``relative_path``."""

    relative_path: str
    offset: int
    length: int
    chunk_offset: tuple[int, ...]
    transformed: bool


def items_by_path(folder: str, limits: Limits) -> dict[tuple[Any, ...], list[Item]]:
    """Tensor path (as formats.dcp names it: the planner's path, else ``(fqn,)``) -> its stored chunks."""
    meta = os.path.join(folder, ".metadata")
    f = CountingFile(meta, limits)
    try:
        asm = Assembler(meta, limits, budget=f.budget)
        value, _ = asm.parse(f.pread(0, min(f.size, limits.max_pickle_bytes)), ".metadata", file_framing=False)
    finally:
        f.close()
    state = _state(value)
    storage = state.get("storage_data")
    if not isinstance(storage, dict):
        raise FormatError("DCP .metadata has no storage_data")
    planner = state.get("planner_data")
    planned: dict[Any, Any] = planner if isinstance(planner, dict) else {}
    out: dict[tuple[Any, ...], list[Item]] = {}
    for index, info in storage.items():
        ix, st = _state(index), _state(info)
        fqn, where, off, length = ix.get("fqn"), st.get("relative_path"), st.get("offset"), st.get("length")
        if not isinstance(fqn, str) or not isinstance(where, str) or type(off) is not int \
                or type(length) is not int or off < 0 or length < 0:
            continue
        path = planned.get(fqn)
        key = tuple(path) if isinstance(path, (list, tuple)) and path and all(isinstance(p, (str, int)) for p in path) \
            else (fqn,)
        chunk = _size(ix.get("offset"))
        out.setdefault(key, []).append(Item(where, off, length, chunk, bool(st.get("transform_descriptors"))))
    return out


def _state(obj: Any) -> dict[str, Any]:
    """The attributes a pickled dataclass instance carries (BUILD's dict, or its (dict, slots) pair)."""
    state = obj.state if isinstance(obj, Call) else None
    if isinstance(state, tuple) and len(state) == 2:
        merged: dict[str, Any] = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        return merged
    return state if isinstance(state, dict) else {}


def _size(obj: Any) -> tuple[int, ...]:
    """``torch.Size([...])`` as the unpickler recorded it (a call on a list), or a plain sequence."""
    if isinstance(obj, Call) and obj.args:
        obj = obj.args[0]
    if isinstance(obj, (list, tuple)) and all(type(v) is int for v in obj):
        return tuple(obj)
    return (-1,)


class _Span(io.RawIOBase):
    """Bytes ``[base, base + size)`` of a file, as a seekable file of ``size`` bytes."""

    def __init__(self, f: Any, base: int, size: int) -> None:
        super().__init__()
        self.f, self.base, self.size, self.pos = f, base, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.f.close()  # the span owns the file it reads
        super().close()

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self.size - self.pos))
        self.f.seek(self.base + self.pos)
        data = self.f.read(n)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)


class _SpanFile(CountingFile):
    """The reader's file interface (``CountingFile``) over ``size`` bytes of ``path`` from ``base`` on."""

    def __init__(self, path: str, base: int, size: int, limits: Limits) -> None:
        super().__init__(path, limits)
        self.f = io.BufferedReader(_Span(self.f, base, size))
        self.size = size


def nested_inventory(path: str, item: Item, limits: Limits) -> Inventory:
    """The torch zip a DCP item holds, read in place as ``torch.load`` reads it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(item.offset)
        head = f.read(4)
    if item.offset + item.length > size:
        raise FormatError(f"{item.relative_path}: the item at {item.offset} runs past the end of the file")
    if head != b"PK\x03\x04":
        raise FormatError(f"{item.relative_path}: the item at {item.offset} is not a torch.save zip")
    span = _SpanFile(path, item.offset, item.length, limits)
    try:
        inv = read_torch_zip(span, path, limits)
    finally:
        span.close()
    if inv.stops or inv.facts.extra.get("torch_refuses"):
        raise FormatError(f"{item.relative_path}: the item at {item.offset} does not load as torch.save")
    if len(inv.tensors) != 1 or inv.tensors[0].path != ():
        raise FormatError(f"{item.relative_path}: the item at {item.offset} is not one tensor")
    return inv


def tiles(shape: tuple[int, ...], chunks: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> str | None:
    """Why ``(offset, size)`` chunks do not tile ``shape`` exactly (each inside, none overlapping, all covering),
    or None when they do."""
    total = 0
    for off, size in chunks:
        if len(off) != len(shape) or len(size) != len(shape) or any(
                o < 0 or n < 0 or o + n > s for o, n, s in zip(off, size, shape, strict=True)):
            return f"do not fit the tensor's shape {list(shape)}"
        vol = 1
        for n in size:
            vol *= n
        total += vol
    whole = 1
    for n in shape:
        whole *= n
    if total != whole:
        return f"hold {total} elements, the tensor {whole}"
    for i, (oa, sa) in enumerate(chunks):
        for ob, sb in chunks[i + 1:]:
            if all(max(a, b) < min(a + n, b + m) for a, n, b, m in zip(oa, sa, ob, sb, strict=True)):
                return "overlap"
    return None


class Chunked:
    """A tensor stored as chunks that tile it, each a checked record of its own source (anything with
    ``view_chunks``): its bytes in C order, read through views of the chunks."""

    def __init__(self, parts: list[tuple[tuple[int, ...], Any, TensorRecord]], shape: tuple[int, ...]) -> None:
        self.parts, self.shape = parts, shape

    def _checked(self, rec: TensorRecord) -> TensorRecord:
        return rec

    def file_span(self, rec: TensorRecord) -> None:
        return None

    def tensor_chunks(self, rec: TensorRecord, chunk_bytes: int) -> Iterator[bytes]:
        start = tuple(0 for _ in self.shape)
        yield from self._region([p for p in self.parts if all(p[2].shape)], 0, start, self.shape, chunk_bytes)

    def _region(self, parts: list[tuple[tuple[int, ...], Any, TensorRecord]], d: int, start: tuple[int, ...],
                extent: tuple[int, ...], chunk_bytes: int) -> Iterator[bytes]:
        """The region ``start``/``extent`` (single indices before ``d``) from the chunk views that tile it."""
        if len(parts) == 1:
            yield from parts[0][1].view_chunks(parts[0][2], chunk_bytes)
            return
        if d >= len(extent):
            raise FormatError("chunks overlap")
        if all(p[2].shape[d + 1:] == extent[d + 1:] for p in parts):  # split along d only: whole chunks in order
            for _, sub, view in sorted(parts, key=lambda p: p[0][d]):
                yield from sub.view_chunks(view, chunk_bytes)
            return
        for i in range(start[d], start[d] + extent[d]):
            row = [(off[:d] + (i,) + off[d + 1:], sub, _index(view, d, i - off[d]))
                   for off, sub, view in parts if off[d] <= i < off[d] + view.shape[d]]
            yield from self._region(row, d + 1, start[:d] + (i,) + start[d + 1:],
                                    extent[:d] + (1,) + extent[d + 1:], chunk_bytes)


def _index(rec: TensorRecord, d: int, i: int) -> TensorRecord:
    """``rec`` with dimension ``d`` narrowed to index ``i`` (kept as a size-1 dimension)."""
    assert rec.stride is not None
    return replace(rec, shape=rec.shape[:d] + (1,) + rec.shape[d + 1:],
                   storage_offset=rec.storage_offset + i * rec.stride[d])
