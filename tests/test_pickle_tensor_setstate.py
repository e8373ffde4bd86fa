"""BUILD on a tensor torch rebuilt calls the real ``Tensor.__setstate__``: ``len(state)`` must be
3, 4 or 5, so a None state raises (TypeError) and nothing after it runs; a 3-item state is
accepted and the pickle goes on (fuzz seed 13 index 9911, in a tar's pickle member)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from _pickle_attack import reaches, system_call

from zipcraft import Entry, build, entries_of, torch_members

pytestmark = pytest.mark.integration  # torch.load runs in a subprocess


def _archive(tmp_path: Path, state: bytes, marker: Path) -> Path:
    out = []
    for e in entries_of(torch_members(obj=__import__("torch").arange(4.0))):
        if e.name.endswith(b"/data.pkl"):
            assert e.data.endswith(b".")
            e = Entry(e.name, e.data[:-1] + state + b"b" + system_call(marker) + b"0.")
        out.append(e)
    p = tmp_path / f"state{len(state)}.pt"
    p.write_bytes(build(out))
    return p


def test_none_state_on_a_tensor_stops_torch(torch: ModuleType, tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    p = _archive(tmp_path, b"N", marker)
    assert not reaches(p, marker, loader="torch")
    inv = ckptlint.inspect(p)
    (stop,) = inv.stops
    assert "Tensor.__setstate__" in stop.reason
    assert not {"os.system", "posix.system"} & {g.qualname for g in inv.globals}


def test_a_three_item_state_is_accepted(torch: ModuleType, tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    p = _archive(tmp_path, b"\x89NN\x87", marker)  # (requires_grad=False, _, _backward_hooks=None)
    assert reaches(p, marker, loader="torch")
    inv = ckptlint.inspect(p)
    assert not inv.stops
    assert {"os.system", "posix.system"} & {g.qualname for g in inv.globals if g.stream in inv.facts.loaded_streams}


def _tensor_subclass(torch: ModuleType) -> type:
    global MyTensor
    MyTensor = type("MyTensor", (torch.Tensor,), {"__module__": __name__, "__qualname__": "MyTensor"})
    return MyTensor


MyTensor: type | None = None


def test_a_tensor_subclass_keeps_its_own_setstate(torch: ModuleType, tmp_path: Path) -> None:
    # _rebuild_from_type_v2 makes an instance of the saved subclass: its __setstate__ may take None,
    # so the reader does not apply Tensor's check there and reads on
    marker = tmp_path / "ran.marker"
    t = torch.arange(4.0).as_subclass(_tensor_subclass(torch))
    out = []
    for e in entries_of(torch_members(obj=t)):
        if e.name.endswith(b"/data.pkl"):
            assert b"_rebuild_from_type_v2" in e.data
            e = Entry(e.name, e.data[:-1] + b"Nb" + system_call(marker) + b"0.")
        out.append(e)
    p = tmp_path / "sub.pt"
    p.write_bytes(build(out))
    inv = ckptlint.inspect(p)
    assert not inv.stops
    assert {"os.system", "posix.system"} & {g.qualname for g in inv.globals}
