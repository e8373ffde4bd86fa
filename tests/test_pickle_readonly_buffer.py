"""READONLY_BUFFER needs the buffer protocol. On a call's result the VM reads on (``bytearray()``
or a numpy array is a buffer) except where the class says its instances never are (``list()``,
``torch.device(...)`` …): there CPython raises and nothing after it runs (fuzz seed 305 index 688)."""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path

import pytest

import ckptlint

_REAL = {"list": builtins.list, "bytearray": builtins.bytearray}


class _OnlyHarmlessBuiltins(pickle.Unpickler):
    """Real ``builtins.list``/``bytearray`` (harmless constructors); any other global is refused."""

    def find_class(self, module: str, name: str) -> type:
        if module == "builtins" and name in _REAL:
            return _REAL[name]
        raise pickle.UnpicklingError(f"reached {module}.{name}")


def _data(cls: str) -> bytes:
    return b"\x80\x05cbuiltins\n" + cls.encode() + b"\n)R\x98" + b"0cos\nsystem\n."


@pytest.mark.parametrize(("cls", "stops"), [("list", True), ("bytearray", False)])
def test_readonly_buffer_on_a_call_result(tmp_path: Path, cls: str, stops: bool) -> None:
    up = _OnlyHarmlessBuiltins(io.BytesIO(_data(cls)))
    with pytest.raises((TypeError, pickle.UnpicklingError)) as e:
        up.load()
    assert ("memoryview" in str(e.value)) is stops  # else CPython went on and reached os.system
    p = tmp_path / f"{cls}.pkl"
    p.write_bytes(_data(cls))
    inv = ckptlint.inspect(p)
    assert ("os.system" in {g.qualname for g in inv.globals}) is not stops
    assert bool([s for s in inv.stops if s.stream == "pickle#0"]) is stops


# BYTEARRAY8 b"a", READONLY_BUFFER, then APPEND 1: the bytearray would take it, the read-only
# memoryview that replaced it on the stack has no append (fuzz seed 1, memoryview classes)
_VIEW_THEN_APPEND = b"\x80\x05cbuiltins\nlist\n0\x96\x01\x00\x00\x00\x00\x00\x00\x00a\x98K\x01a" + b"0cos\nsystem\n."


def test_readonly_buffer_replaces_a_bytearray_with_a_read_only_view(tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="'memoryview' object has no attribute 'append'"):
        _OnlyHarmlessBuiltins(io.BytesIO(_VIEW_THEN_APPEND)).load()  # stops before os.system
    p = tmp_path / "view.pkl"
    p.write_bytes(_VIEW_THEN_APPEND)
    inv = ckptlint.inspect(p)
    assert "os.system" not in {g.qualname for g in inv.globals}
    (stop,) = [s for s in inv.stops if s.stream == "pickle#0"]
    assert stop.offset == _VIEW_THEN_APPEND.index(b"K\x01a") + 2 and "memoryview" in stop.reason


def test_the_memo_keeps_the_bytearray_and_the_view_pins_it(tmp_path: Path) -> None:
    # MEMOIZE before READONLY_BUFFER: GET gives back the bytearray itself, but the view still on the
    # stack exports its buffer, so APPEND (bytearray.extend) cannot resize it: CPython stops there
    data = (b"\x80\x05cbuiltins\nlist\n0\x96\x01\x00\x00\x00\x00\x00\x00\x00a\x94\x98h\x00K\x01a"
            b"0cos\nsystem\n.")
    with pytest.raises(BufferError):
        _OnlyHarmlessBuiltins(io.BytesIO(data)).load()
    p = tmp_path / "memo.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert "os.system" not in {g.qualname for g in inv.globals}
    (stop,) = [s for s in inv.stops if s.stream == "pickle#0"]
    assert stop.offset == data.index(b"K\x01a") + 2
