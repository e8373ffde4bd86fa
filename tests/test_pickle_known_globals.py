"""What a global is, where CPython's checks depend on it: REDUCE and NEWOBJ need a tuple of arguments,
NEWOBJ_EX a dict of keywords, READONLY_BUFFER a buffer. Most globals could be anything (``pickle.PROTO``
is bytes, ``sys.flags`` a tuple), so the machine reads on past them; a builtin class or function, or
another name known in ``formats/knowncalls.py``, never is, and CPython stops there (fuzz seed 1
index 92888: ``len`` called with ``builtins.bytearray`` as its argument list).

The oracle is CPython's C unpickler handing out the real, harmless objects named in ``_REAL`` and
refusing every other global with "reached <name>": a file that ends on that error proves CPython
got to the payload."""

from __future__ import annotations

import builtins
import io
import pickle
import sys
from pathlib import Path

import pytest

import ckptlint

_REAL = {("builtins", "len"): builtins.len, ("builtins", "bytearray"): builtins.bytearray,
         ("builtins", "max"): builtins.max, ("builtins", "dict"): builtins.dict,
         ("sys", "flags"): sys.flags, ("pickle", "PROTO"): pickle.PROTO}
_PAYLOAD = b"cos\nsystem\n\x8c\x04echo\x85R."


class _HarmlessOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _REAL:
            return _REAL[(module, name)]
        raise pickle.UnpicklingError(f"reached {module}.{name}")


def _cpython(data: bytes) -> str:
    """What stopped CPython: "reached os.system" when it got to the payload."""
    try:
        _HarmlessOnly(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - the error is the answer
        return str(e)
    return "loaded"


def _ckptlint(tmp_path: Path, data: bytes) -> tuple[set[str], list[str]]:
    p = tmp_path / "case.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    return {g.qualname for g in inv.globals}, [s.reason for s in inv.stops if s.stream == "pickle#0"]


CASES = {
    # REDUCE len(*bytearray): the argument list is a class, not a tuple
    "reduce_args_builtin_class": (b"\x80\x04cbuiltins\nlen\ncbuiltins\nbytearray\nR0", "argument list must be a tuple"),
    # NEWOBJ_EX bytearray.__new__(bytearray, (), **dict): kwargs are a class
    "newobj_ex_kwargs_builtin_class": (b"\x80\x04cbuiltins\nbytearray\n)cbuiltins\ndict\n\x920",
                                       "kwargs argument must be a dict"),
    # READONLY_BUFFER on a builtin function
    "readonly_buffer_on_a_builtin_function": (b"\x80\x04cbuiltins\nlen\n\x980", "bytes-like object is required"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_known_globals_stop_where_cpython_stops(tmp_path: Path, case: str) -> None:
    head, why = CASES[case]
    data = head + _PAYLOAD
    assert why in _cpython(data)  # CPython raises before the payload
    names, stops = _ckptlint(tmp_path, data)
    assert "os.system" not in names and len(stops) == 1, (names, stops)


READS_ON = {
    # max(*sys.flags): sys.flags is a tuple (a struct sequence), so the call is made
    "reduce_args_tuple_global": b"\x80\x04cbuiltins\nmax\ncsys\nflags\nR0",
    # READONLY_BUFFER on pickle.PROTO (bytes): a buffer, so CPython reads on
    "readonly_buffer_on_a_bytes_global": b"\x80\x04cpickle\nPROTO\n\x980",
}


@pytest.mark.parametrize("case", sorted(READS_ON))
def test_globals_that_may_be_tuples_or_buffers_are_read_past(tmp_path: Path, case: str) -> None:
    data = READS_ON[case] + _PAYLOAD
    assert _cpython(data) == "reached os.system"
    names, stops = _ckptlint(tmp_path, data)
    assert "os.system" in names and not stops, (names, stops)
