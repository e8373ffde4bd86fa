"""A GLOBAL whose lines start inside a FRAME and run past its end: CPython's C unpickler reads the
lines contiguously (the frame only has to exist), so the empty module line makes it raise
"pickle data was truncated" — ckptlint stops there too and reports no global."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

import ckptlint
from ckptlint.errors import CheckpointError

# the 13-byte frame ends right after the GLOBAL opcode 'c'; its lines "\nx\n" lie past the frame
DATA = b"\x95\r\x00\x00\x00\x00\x00\x00\x00\x8a\nl\xfc\x9cF\xf9\xe9\x03.\x80\x02c\nx\nrue\x85R."


class _Inert(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        raise AssertionError(f"CPython asked for {module}.{name}")


def test_global_lines_past_a_frame_read_as_cpython_reads_them(tmp_path: Path) -> None:
    with pytest.raises(pickle.UnpicklingError, match="truncated"):  # CPython's C loop, nothing resolved
        _Inert(io.BytesIO(DATA)).load()
    p = tmp_path / "frame_global.pkl"
    p.write_bytes(DATA)
    with pytest.raises(CheckpointError, match="truncated"):
        ckptlint.inspect(p)  # no global before the stop: nothing ran, the file is unreadable
