"""NEWOBJ_EX checks its class first (``load_newobj``): a class argument that is a plain value (an
int, a set …) makes CPython raise there, whatever the args are (a call's result included), so a
global after it is never requested (fuzz seed 302 index 70, a tar's pickle member)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

import ckptlint


class _Recording(pickle.Unpickler):
    """CPython's C loop; globals are recorded and come back as an inert class (never called here)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.requested: list[str] = []

    def find_class(self, module: str, name: str) -> type:
        self.requested.append(f"{module}.{name}")
        return type(name, (), {})


# a global first (so the file is reported), then NEWOBJ_EX(cls=5, args=<a call's result>, {}), then os.system
DATA = (b"\x80\x04\x8c\x08builtins\x8c\tbytearray\x930K\x05\x8c\x08builtins\x8c\tbytearray\x93)R}\x92"
        b"\x8c\x02os\x8c\x06system\x93.")


def test_newobj_ex_with_a_value_for_class_stops_where_cpython_does(tmp_path: Path) -> None:
    up = _Recording(DATA)
    with pytest.raises(pickle.UnpicklingError, match="NEWOBJ_EX class argument must be a type, not int"):
        up.load()
    assert "os.system" not in up.requested
    p = tmp_path / "newobj_ex.pkl"
    p.write_bytes(DATA)
    inv = ckptlint.inspect(p)
    assert {g.qualname for g in inv.globals} == set(up.requested) == {"builtins.bytearray"}
    (stop,) = inv.stops
    assert "class argument must be a type" in stop.reason and stop.offset == DATA.index(b"\x92")
