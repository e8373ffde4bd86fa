"""Globals whose real object is known (builtin classes, pure builtin functions, ``collections.OrderedDict``
and ``Counter``, ``__future__`` features, torch's dtypes and allowlisted callables): the machine does what
CPython does with the real object, so a file stops where a real load stops and reads on where it reads
on (fuzz seed 7 and 8 classes: ``frozenset(None)``, ``range()``, ``_rebuild_tensor_v2`` with 4 arguments,
``__future__.annotations()``, BUILD or APPEND on ``builtins.set`` itself, ``torch.device(None)`` …).

The oracle is CPython's C unpickler handing out the real harmless objects in ``_REAL`` and refusing
any other global with "reached <name>" (the payload ``os.system`` comes last in every file); torch's
callables are checked against torch in tests/differential/test_pickle_vs_cpython.py."""

from __future__ import annotations
import __future__

import _codecs
import builtins
import collections
import io
import pickle
import time
from pathlib import Path

import pytest

import ckptlint

_REAL = {("builtins", n): getattr(builtins, n) for n in ("frozenset", "set", "list", "dict", "tuple", "bytes",
                                                         "bytearray", "str", "int", "complex", "range", "len")}
_REAL |= {("collections", "OrderedDict"): collections.OrderedDict, ("collections", "Counter"): collections.Counter,
          ("__future__", "annotations"): __future__.annotations, ("time", "sleep"): time.sleep,
          ("builtins", "ValueError"): ValueError, ("_codecs", "encode"): _codecs.encode}
_PAYLOAD = b"0cos\nsystem\n\x8c\x04echo\x85R."


class _HarmlessOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _REAL:
            return _REAL[(module, name)]
        if module == "m":
            return object  # a harmless stand-in for a global only running the file could resolve
        raise pickle.UnpicklingError(f"reached {module}.{name}")


def _reaches_payload(data: bytes) -> bool:
    try:
        _HarmlessOnly(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - any other error: CPython stopped before the payload
        return str(e) == "reached os.system"
    raise AssertionError("every case either stops or reaches os.system")


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


STOPS = {
    "frozenset_of_none": _g("builtins", "frozenset") + b"N\x85R",
    "range_without_arguments": _g("builtins", "range") + b")R",
    "bytearray_of_str_without_encoding": _g("builtins", "bytearray") + b"X\x01\x00\x00\x00a\x85R",
    "int_of_junk": _g("builtins", "int") + b"X\x02\x00\x00\x00zz\x85R",
    "newobj_on_a_function": _g("builtins", "len") + b")\x81",
    "calling_a_future_feature": _g("__future__", "annotations") + b")R",
    "build_dict_on_a_class": _g("builtins", "set") + b"}X\x01\x00\x00\x00aK\x01sb",
    "build_empty_dict_on_a_builtin_function": _g("builtins", "len") + b"}b",
    "append_to_a_class": _g("builtins", "list") + b"K\x01a",
    "setitem_on_a_builtin_function": _g("builtins", "len") + b"K\x01K\x02s",
    "additems_on_a_class": _g("builtins", "set") + b"(K\x01\x90",
    "slot_state_on_an_immutable_class": _g("collections", "OrderedDict") + b"N}X\x01\x00\x00\x00xK\x01s\x86b",
    "ordereddict_of_bad_pairs": _g("collections", "OrderedDict") + b"]K\x01a\x85R",
    "setitem_on_an_exception_instance": _g("builtins", "ValueError") + b")RK\x01K\x02s",
    "calling_an_exception_instance": _g("builtins", "ValueError") + b")R)R",
    "build_list_on_an_exception_instance": _g("builtins", "ValueError") + b")R]b",
    "build_list_on_a_builtin_function": _g("_codecs", "encode") + b"]b",
    "setitem_on_a_built_exception_instance": _g("builtins", "ValueError") + b")R}X\x01\x00\x00\x00aK\x01sbK\x01K\x02s",
    # arity, whatever the arguments are (here globals only running the file could resolve)
    "inst_ordereddict_with_3_arguments": b"(" + _g("m", "a") + _g("m", "b") + _g("m", "c")
                                         + b"icollections\nOrderedDict\n",
    "inst_set_with_2_arguments": b"(" + _g("m", "a") + _g("m", "b") + b"ibuiltins\nset\n",
    "len_of_a_class": _g("builtins", "len") + _g("builtins", "set") + b"\x85R",
    "encode_with_an_unknown_codec": _g("_codecs", "encode") + b"X\x01\x00\x00\x00aX\x06\x00\x00\x00lati.1\x86R",
    "append_to_a_readonly_view": _g("builtins", "len") + b"0\x96\x01\x00\x00\x00\x00\x00\x00\x00a\x98K\x01a",
}
READS_ON = {
    "frozenset_of_a_list": _g("builtins", "frozenset") + b"]K\x01a\x85R",
    "newobj_ignores_set_arguments": _g("builtins", "set") + b"K\x01\x85\x81",
    "build_none_on_a_builtin_function": _g("builtins", "len") + b"Nb",
    "build_empty_dict_on_a_class": _g("builtins", "set") + b"}b",
    "slot_state_on_a_python_class": _g("collections", "Counter") + b"N}X\x01\x00\x00\x00xK\x01s\x86b",
    # BUILD whose state is what a call returned: time.sleep(0) is None, so BUILD is a no-op
    "build_with_a_call_result_as_state": b"]" + _g("time", "sleep") + b"K\x00\x85Rb",
    "build_attributes_on_an_exception_instance": _g("builtins", "ValueError") + b")R}X\x01\x00\x00\x00aK\x01sb",
    # BUILD gave the instance an ``append`` attribute (str): do_append finds it on the instance and calls it
    "append_through_an_attribute_build_gave": _g("builtins", "ValueError") + b")R}X\x06\x00\x00\x00append"
                                              + _g("builtins", "str") + b"sbK\x01a",
    "len_of_bytes": _g("builtins", "len") + b"C\x02ab\x85R",
}


@pytest.mark.parametrize("case", sorted(STOPS))
def test_stops_where_the_real_object_makes_cpython_stop(tmp_path: Path, case: str) -> None:
    data = b"\x80\x04" + STOPS[case] + _PAYLOAD
    assert not _reaches_payload(data)
    p = tmp_path / "case.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert "os.system" not in {g.qualname for g in inv.globals}
    assert [s for s in inv.stops if s.stream == "pickle#0"]


@pytest.mark.parametrize("case", sorted(READS_ON))
def test_reads_on_where_the_real_object_lets_cpython_go_on(tmp_path: Path, case: str) -> None:
    data = b"\x80\x04" + READS_ON[case] + _PAYLOAD
    assert _reaches_payload(data)
    p = tmp_path / "case.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert "os.system" in {g.qualname for g in inv.globals}
    assert not [s for s in inv.stops if s.stream == "pickle#0"]


def test_pure_builtin_results_are_real_values(tmp_path: Path) -> None:
    # bytes(b"ab") is made for real, so a STACK_GLOBAL whose operand it is stops like CPython's
    data = b"\x80\x04" + _g("builtins", "str") + b"X\x01\x00\x00\x00a\x85R" + b"\x8c\x01b\x93" + _PAYLOAD
    p = tmp_path / "str.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert "a.b" in {g.qualname for g in inv.globals}  # str('a') is the str 'a': a STACK_GLOBAL operand


def test_conversions_python_versions_disagree_on_stay_records(tmp_path: Path) -> None:
    # int() of 5,000 digits: Python 3.10 converts it, 3.11 raises (int_max_str_digits): the machine cannot
    # know the loader's Python, so it reads on (the call stays a record)
    data = b"\x80\x04" + _g("builtins", "int") + b"X" + (5000).to_bytes(4, "little") + b"9" * 5000 + b"\x85R" + _PAYLOAD
    p = tmp_path / "digits.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert "os.system" in {g.qualname for g in inv.globals}


@pytest.mark.parametrize("call", [b"ctorch._utils\n_rebuild_tensorg0\n)R",  # a name only sharing the prefix
                                  b"ctorch._utils\n_rebuild_tensor\n)R",  # no storage argument at all
                                  b"ctorch._utils\n_rebuild_parameter\n(I1\ntR"])  # one argument of two
def test_torch_calls_with_too_few_arguments_are_read_not_crashed(tmp_path: Path, call: bytes) -> None:
    """Fuzz seed 41 index 15721: a rebuild call with fewer arguments than its checks read was an IndexError."""
    p = tmp_path / "few.pkl"
    p.write_bytes(call + b"0cos\nsystem\n(S'true'\ntR.")
    inv = ckptlint.inspect(p)
    assert any(g.qualname.startswith("torch._utils._rebuild") for g in inv.globals)
