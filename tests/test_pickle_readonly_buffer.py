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
