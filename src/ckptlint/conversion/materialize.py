"""A strided tensor's elements as one C-order byte stream, read from its storage in bounded pieces.

``torch.load`` gives a view (a slice, a transpose, an ``expand`` with stride 0, an offset into a shared
storage); safetensors holds only contiguous tensors. :func:`strided_chunks` produces exactly the bytes of
``tensor.contiguous()`` while never holding more than about ``chunk_bytes + window`` bytes: contiguous
runs stream straight through; other layouts are cut into output blocks of at most ``chunk_bytes``, each
gathered from storage reads of at most ``window`` bytes (a block whose storage span is wider is split
along its widest-strided dimension, and the pieces are interleaved back into C order).
Pure functions over a ``read(offset, n)`` callable: no file, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

Read = Callable[[int, int], bytes]
"""``read(offset, n)``: exactly ``n`` bytes of the storage at byte ``offset`` (raises when it cannot)."""

Dims = list[tuple[int, int]]
"""(size, stride in elements) per dimension, outermost first."""

_FORMATS: dict[int, Literal["B", "H", "I", "Q"]] = {1: "B", 2: "H", 4: "I", 8: "Q"}
"""memoryview formats for strided slicing by element size (native order: the bytes are only moved)."""

_TILE = 256 << 10
"""Bytes of the tile a transpose is assembled in (fits a CPU cache)."""

DEFAULT_WINDOW = 32 << 20
"""Largest single storage read a gather makes (bytes)."""


def coalesce(shape: tuple[int, ...], stride: tuple[int, ...]) -> Dims:
    """Drop size-1 dimensions and merge neighbours that are contiguous in each other
    (``(a, b*s), (b, s)`` -> ``(a*b, s)``): the same elements in the same order, fewer loops."""
    dims: Dims = []
    for n, s in zip(shape, stride, strict=True):
        if n == 1:
            continue
        if dims and dims[-1][1] == n * s:
            dims[-1] = (dims[-1][0] * n, s)
        else:
            dims.append((n, s))
    return dims


def span_elements(dims: Dims) -> int:
    """Elements from the first to the last one the view touches, inclusive (strides are >= 0)."""
    return 1 + sum((n - 1) * s for n, s in dims)


def strided_chunks(read: Read, shape: tuple[int, ...], stride: tuple[int, ...], offset: int, itemsize: int,
                   chunk_bytes: int, window: int = DEFAULT_WINDOW) -> Iterator[bytes]:
    """The C-order bytes of the view ``(shape, stride, offset)`` (in elements of ``itemsize`` bytes) over
    the storage ``read`` gives, as pieces of whole elements, at most ``max(chunk_bytes, itemsize)`` bytes.
    Negative strides or offsets are the caller's to refuse (torch has neither)."""
    if any(n == 0 for n in shape):
        return
    chunk_bytes = max(chunk_bytes // itemsize * itemsize, itemsize)  # whole elements (byte swapping needs them)
    window = max(window, itemsize)
    dims = coalesce(shape, stride)
    if not dims or (len(dims) == 1 and dims[0][1] == 1):
        yield from _contiguous(read, offset * itemsize, (dims[0][0] if dims else 1) * itemsize, chunk_bytes)
        return
    for block_dims, base in _blocks(dims, offset, itemsize, chunk_bytes):
        yield _gather(read, block_dims, base, itemsize, window)


def _contiguous(read: Read, start: int, total: int, chunk_bytes: int) -> Iterator[bytes]:
    step = max(1, chunk_bytes)
    for pos in range(0, total, step):
        yield read(start + pos, min(step, total - pos))


def _blocks(dims: Dims, offset: int, itemsize: int, chunk_bytes: int) -> Iterator[tuple[Dims, int]]:
    """Output-order blocks of at most ``chunk_bytes``: every index of the outer dimensions, with the first
    dimension whose inner size fits cut into runs of indices."""
    inner = itemsize
    k = len(dims) - 1
    while k > 0 and inner * dims[k][0] <= chunk_bytes:
        inner *= dims[k][0]
        k -= 1
    # dims[k+1:] fit whole in a chunk (inner bytes); dims[k] is cut into runs of b indices
    n_k, s_k = dims[k]
    b = max(1, min(n_k, chunk_bytes // inner))
    rest = dims[k + 1:]
    outer = dims[:k]
    for base in _offsets(outer, offset):
        for j in range(0, n_k, b):
            yield [(min(b, n_k - j), s_k), *rest], base + j * s_k


def _offsets(dims: Dims, offset: int) -> Iterator[int]:
    """Each element offset of ``dims`` in C order (the outer loop of a blocked walk)."""
    if not dims:
        yield offset
        return
    (n, s), rest = dims[0], dims[1:]
    for i in range(n):
        yield from _offsets(rest, offset + i * s)


def _gather(read: Read, dims: Dims, base: int, itemsize: int, window: int) -> bytes:
    """One block's bytes in C order: one storage read when its span fits ``window``, else one gather
    per index of the widest-strided dimension, interleaved back into place."""
    span = span_elements(dims)
    if span * itemsize <= window:
        buf = memoryview(read(base * itemsize, span * itemsize))
        return b"".join(_pieces(buf, dims, 0, itemsize))
    d = max(range(len(dims)), key=lambda i: dims[i][1])
    n_d, s_d = dims[d]
    others = dims[:d] + dims[d + 1:]
    pieces = [_gather(read, others, base + j * s_d, itemsize, window) for j in range(n_d)]
    return _interleave(pieces, dims, d, itemsize)


def _interleave(pieces: list[bytes], dims: Dims, d: int, itemsize: int) -> bytes:
    """Put ``pieces[j]`` (the block with index ``j`` fixed along dimension ``d``) back in C order.

    The output is ``(outer, n_d)`` cells of ``unit`` bytes, piece ``j`` being column ``j``. Columns are
    written into a tile of a few hundred KiB first (strided writes that stay in cache), then each tile row
    is copied into place: a transpose written straight into a large buffer is several times slower."""
    n_d = len(pieces)
    unit = itemsize
    for n, _ in dims[d + 1:]:
        unit *= n  # bytes of one index of dimension d
    outer = len(pieces[0]) // unit if unit else 0
    if outer <= 1:
        return b"".join(pieces)
    out = bytearray(outer * n_d * unit)
    row = n_d * unit
    if unit in _FORMATS:
        fmt = _FORMATS[unit]
        width = max(1, min(n_d, _TILE // (outer * unit)))
        tile = bytearray(outer * width * unit)
        for j0 in range(0, n_d, width):
            w = min(width, n_d - j0)
            tv = memoryview(tile)[:outer * w * unit].cast(fmt)
            for t in range(w):
                tv[t::w] = memoryview(pieces[j0 + t]).cast(fmt)
            span = w * unit
            for a in range(outer):
                at = a * row + j0 * unit
                out[at:at + span] = tile[a * span:(a + 1) * span]
        return bytes(out)
    for j, p in enumerate(pieces):
        for a in range(outer):
            at = a * row + j * unit
            out[at:at + unit] = p[a * unit:(a + 1) * unit]
    return bytes(out)


def _pieces(buf: memoryview, dims: Dims, off: int, itemsize: int) -> Iterator[bytes | memoryview]:
    """The view ``dims`` at element ``off`` of an in-memory span, as C-order pieces."""
    if not dims:
        yield buf[off * itemsize:(off + 1) * itemsize]
        return
    n, s = dims[0]
    if len(dims) == 1:
        if s == 1:
            yield buf[off * itemsize:(off + n) * itemsize]
        elif s == 0:
            yield bytes(buf[off * itemsize:(off + 1) * itemsize]) * n
        elif itemsize in _FORMATS:
            typed = buf.cast(_FORMATS[itemsize])
            yield typed[off:off + (n - 1) * s + 1:s].tobytes()
        else:
            for i in range(n):
                at = (off + i * s) * itemsize
                yield buf[at:at + itemsize]
        return
    if s == 0:
        yield b"".join(_pieces(buf, dims[1:], off, itemsize)) * n
        return
    for i in range(n):
        yield from _pieces(buf, dims[1:], off + i * s, itemsize)


def byteswapped(data: bytes | bytearray | memoryview, unit: int) -> bytes:
    """``data`` with every ``unit``-byte group reversed (big-endian storage bytes to little-endian)."""
    if unit <= 1:
        return bytes(data)
    if len(data) % unit:
        raise ValueError(f"{len(data)} bytes are not whole {unit}-byte elements")
    out = bytearray(len(data))
    for i in range(unit):
        out[i::unit] = data[unit - 1 - i::unit]
    return bytes(out)


__all__ = ["DEFAULT_WINDOW", "Dims", "Read", "byteswapped", "coalesce", "span_elements",
           "strided_chunks"]
