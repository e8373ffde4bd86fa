"""The whole-file byte budget charges a zip member's pickle once: extraction charges the bytes it
inflates or reads, and the parse of those same bytes adds nothing (it used to charge them again,
halving the room left for data.pkl). The bound itself still holds."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from ckptlint.errors import CheckpointError
from ckptlint.limits import Limits

from zipcraft import Entry, build, entries_of, torch_members

N = 600_000


def _archive(tmp_path: Path, method: int) -> Path:  # torch_members() runs torch.save
    data_pkl = b"\x80\x02B" + struct.pack("<I", N) + b"\0" * N + b"."
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / f"big{method}.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", data_pkl, method=method), *rest]))
    return p


@pytest.mark.parametrize("method", [0, 8], ids=["stored", "deflated"])
def test_data_pkl_is_charged_once(torch: ModuleType, tmp_path: Path, method: int) -> None:
    p = _archive(tmp_path, method)
    inv = ckptlint.inspect(p, limits=Limits(max_inflated_bytes=N + N // 2))  # room for one copy, not two
    assert "archive/data.pkl" in inv.facts.loaded_streams and not inv.stops


@pytest.mark.parametrize("method", [0, 8], ids=["stored", "deflated"])
def test_the_bound_still_holds(torch: ModuleType, tmp_path: Path, method: int) -> None:
    p = _archive(tmp_path, method)
    with pytest.raises(CheckpointError) as e:
        ckptlint.inspect(p, limits=Limits(max_inflated_bytes=N // 2))
    assert e.value.limit == "max_inflated_bytes"
