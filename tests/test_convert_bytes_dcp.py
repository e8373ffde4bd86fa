"""convert.dcpitems.tiles: the chunks a DCP tensor was saved in must tile it exactly (torch-free)."""

from __future__ import annotations

import pytest

from ckptlint.conversion.dcpitems import tiles


@pytest.mark.parametrize("chunks", [
    [((0, 0), (4, 5)), ((4, 0), (3, 5))],  # rows
    [((0, 0), (4, 3)), ((0, 3), (4, 3))],  # columns
    [((0, 0), (2, 3)), ((0, 3), (2, 3)), ((2, 0), (2, 6))],  # a grid, one side split
    [((0, 0), (7, 5))],
])
def test_chunks_that_tile_the_tensor(chunks: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
    shape = (7, 5) if chunks[0][1][1] == 5 else (4, 6)
    assert tiles(shape, chunks) is None


@pytest.mark.parametrize(("chunks", "why"), [
    ([((0, 0), (4, 5)), ((3, 0), (4, 5))], "hold 40 elements"),
    ([((0, 0), (4, 5)), ((4, 0), (4, 5))], "do not fit"),
    ([((0, 0), (4, 5))], "hold 20 elements, the tensor 35"),
    ([((0, 0), (4, 5)), ((3, 0), (3, 5))], "overlap"),  # 35 elements: row 3 twice, row 6 never
    ([((0,), (7,))], "do not fit"),
])
def test_chunks_that_do_not(chunks: list[tuple[tuple[int, ...], tuple[int, ...]]], why: str) -> None:
    assert why in (tiles((7, 5), chunks) or "")
