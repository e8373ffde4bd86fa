"""convert.materialize: strided views as C-order bytes, in bounded pieces, against the definition of a strided
view (element ``i`` of index ``(i0, i1, ...)`` is at ``offset + sum(ik * stride_k)``), torch-free."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlint.conversion import materialize
from ckptlint.conversion.materialize import byteswapped, coalesce, strided_chunks


def _oracle(store: bytes, shape: tuple[int, ...], stride: tuple[int, ...], offset: int, itemsize: int) -> bytes:
    out = bytearray()
    for index in itertools.product(*(range(n) for n in shape)):
        at = (offset + sum(i * s for i, s in zip(index, stride, strict=True))) * itemsize
        out += store[at:at + itemsize]
    return bytes(out)


class _Store:
    """A storage that records every read (to check the bounds on what is read at once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[int] = []

    def read(self, offset: int, n: int) -> bytes:
        assert offset >= 0 and offset + n <= len(self.data), (offset, n, len(self.data))
        self.reads.append(n)
        return self.data[offset:offset + n]


@st.composite
def _views(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], int, int, int, int]:
    nd = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=nd, max_size=nd)))
    stride = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 6, 7, 30]), min_size=nd, max_size=nd)))
    return (shape, stride, draw(st.integers(0, 9)), draw(st.sampled_from([1, 2, 3, 4, 8, 16])),
            draw(st.sampled_from([1, 3, 8, 64, 4096])), draw(st.sampled_from([1, 8, 24, 100, 1 << 20])))


@settings(max_examples=600, deadline=None)
@given(_views(), st.randoms(use_true_random=False))
def test_every_view_is_numpys_contiguous_copy(view: tuple[tuple[int, ...], tuple[int, ...], int, int, int, int],
                                              rnd: random.Random) -> None:
    shape, stride, offset, itemsize, chunk, window = view
    span = offset + 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) if 0 not in shape else offset
    store = _Store(rnd.randbytes(span * itemsize))
    pieces = list(strided_chunks(store.read, shape, stride, offset, itemsize, chunk, window))
    assert b"".join(pieces) == _oracle(store.data, shape, stride, offset, itemsize)
    assert all(len(p) <= max(chunk, itemsize) and len(p) % itemsize == 0 for p in pieces)
    # a read is one window, a piece of at most a chunk, or a single element
    assert all(n <= max(window, chunk, itemsize) for n in store.reads)


@pytest.mark.parametrize("tile", [256 << 10, 100, 4])
def test_a_transposed_matrix_wider_than_the_window_is_read_in_small_pieces(monkeypatch: pytest.MonkeyPatch,
                                                                           tile: int) -> None:
    monkeypatch.setattr(materialize, "_TILE", tile)  # the transpose assembled in one tile, in several, in columns
    rows, cols, itemsize = 64, 48, 4
    store = _Store(random.Random(1).randbytes(rows * cols * itemsize))
    window = 1024  # the whole storage is 12 KiB
    got = b"".join(strided_chunks(store.read, (cols, rows), (1, cols), 0, itemsize, 2048, window))
    assert got == _oracle(store.data, (cols, rows), (1, cols), 0, itemsize)
    assert max(store.reads) <= window
    assert sum(store.reads) < 4 * len(store.data)  # not one whole-span read per output row


def test_a_contiguous_tensor_streams_in_chunks_straight_from_its_offset() -> None:
    store = _Store(bytes(range(256)) * 4)
    pieces = list(strided_chunks(store.read, (2, 3, 10), (30, 10, 1), 5, 2, 16))
    assert b"".join(pieces) == store.data[10:10 + 120]
    assert [len(p) for p in pieces] == [16] * 7 + [8]


def test_expand_repeats_one_element_without_reading_more() -> None:
    store = _Store(b"\x01\x02\x03\x04")
    assert b"".join(strided_chunks(store.read, (3, 2), (0, 1), 0, 2, 1 << 20)) == b"\x01\x02\x03\x04" * 3
    assert store.reads == [4]


def test_coalesce_merges_contiguous_dimensions_and_drops_ones() -> None:
    assert coalesce((2, 1, 3, 4), (12, 99, 4, 1)) == [(24, 1)]
    assert coalesce((4, 6), (1, 4)) == [(4, 1), (6, 4)]
    assert coalesce((), ()) == []


@pytest.mark.parametrize("unit", [2, 4, 8, 3])
def test_byteswapped_reverses_each_group(unit: int) -> None:
    data = bytes(range(unit * 5))
    want = b"".join(data[i:i + unit][::-1] for i in range(0, len(data), unit))
    assert byteswapped(data, unit) == want
    assert byteswapped(data, 1) == data


def test_byteswapped_refuses_a_partial_element() -> None:
    with pytest.raises(ValueError, match="whole 4-byte"):
        byteswapped(b"abcdef", 4)
