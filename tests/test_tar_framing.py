"""FRAMEs in a torch 0.1 tar's members: torch reads the extracted ``storages``/``tensors`` files
through ``open(p, "rb", 0)`` (no peek), so an opcode that straddles a frame's end has the rest of
the frame dropped and its argument read after it (the io.BytesIO reading), while ``pickle.loads``
reads on contiguously. The reading torch runs is the loaded stream."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tarcraft as tc
from ckptlint.formats import read_inventory

pytestmark = pytest.mark.integration  # the proof runs torch in a subprocess


def _split_count(marker: str) -> bytes:
    """The storages count pickle: BINUNICODE's 4-byte length straddles a 3-byte FRAME. Contiguously
    the length swallows the payload into a string; without peek the length is the 4 zero bytes after
    the frame, and the payload runs. Both readings then pop the string and return the count 1."""
    body = tc.payload(marker) + b"0"
    data = (b"\x80\x04\x95" + struct.pack("<Q", 3) + b"X" + (2 + len(body)).to_bytes(2, "little")
            + b"\x00\x00\x00\x00" + body + b"0" + tc.pint(1) + b".")
    t = tc.TorchTar()
    st = t.storages()
    st = data + st[st.index(b".") + 1:]
    return tc.tar_bytes([(n, st if n == "storages" else d) for n, d in t.members()])


def test_storages_count_split_by_a_frame_is_read_as_torch_reads_it(
        tmp_path: Path, run_python: Callable[..., Any]) -> None:
    marker = tmp_path / "ran.marker"
    p = tmp_path / "framed.tar"
    p.write_bytes(_split_count(str(marker)))
    run_python("-c", "import sys, os, torch; os.chdir(sys.argv[2]); torch.load(sys.argv[1], weights_only=False)",
               p, tmp_path)
    assert marker.exists(), "torch.load never reached the payload"
    inv = read_inventory(p)
    loaded = set(inv.facts.loaded_streams)
    assert "storages#0" in loaded
    hits = {g.stream for g in inv.globals if g.qualname in ("os.system", "posix.system")}
    assert "storages#0" in hits  # the reading torch runs (was only in a not-loaded '#file' reading)
    assert "storages#0#contiguous" not in loaded
    assert any("read different pickles" in a for a in inv.anomalies)
    assert not [s for s in inv.stops if s.stream in loaded]
