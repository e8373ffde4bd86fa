"""torch's own callables and readers (and CPython, on fuzz repros) against the static pickle machine, where
the machine knows the real object: the weights_only allowlist's callables with arguments that make the
real call raise (or not), and tensor views larger than a zip record's storage (torch.load raises before
anything after them runs).

The oracle hands out torch's real objects for the allowlisted names (torch deems them safe to call on
untrusted data) and refuses every other global, so "reached os.system" means a real load got to the payload.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import pytest
from test_pickle_vs_cpython import oracle, ours

import ckptlint

# torch's allowlisted callables with arguments that make the real call raise (or not): the oracle hands
# out torch's real objects for these names (torch deems them safe to call on untrusted data) and refuses
# every other global, so "reached os.system" means a real load got to the payload.
_TORCH_CALLS = {
    "rebuild_tensor_v2_with_4_args": (b"ctorch._utils\n_rebuild_tensor_v2\n(NK\x00)\x29tR", False),
    "rebuild_tensor_v2_storage_is_none": (b"ctorch._utils\n_rebuild_tensor_v2\n(NK\x00))\x89NtR", False),
    "rebuild_parameter_with_1_arg": (b"ctorch._utils\n_rebuild_parameter\nN\x85R", False),
    "newobj_on_a_rebuild_function": (b"ctorch._utils\n_rebuild_tensor\n)\x81", False),
    "calling_a_dtype": (b"ctorch\nfloat32\n)R", False),
    "size_of_none": (b"ctorch\nSize\nN\x85R", False),
    "size_of_floats": (b"ctorch\nSize\n]G?\xf8\x00\x00\x00\x00\x00\x00a\x85R", False),
    "size_of_a_list": (b"ctorch\nSize\n]K\x02a\x85R", True),
    "device_of_none": (b"ctorch\ndevice\nN\x85R", False),
    "device_bad_index": (b"ctorch\ndevice\nX\x05\x00\x00\x00cpu:x\x85R", False),
    "device_cpu": (b"ctorch\ndevice\nX\x03\x00\x00\x00cpu\x85R", True),
    "device_unknown_type": (b"ctorch\ndevice\nX\x04\x00\x00\x00true\x85R", False),
    "build_list_on_a_rebuild_function": (b"ctorch._utils\n_rebuild_tensor\n]b", False),
    "build_attributes_on_a_rebuild_function": (b"ctorch._utils\n_rebuild_tensor\n}X\x01\x00\x00\x00aK\x01sb", True),
    "setitem_on_a_dtype": (b"ctorch\nfloat32\nK\x01K\x01s", False),
    "build_list_on_the_size_class": (b"ctorch\nSize\n]b", False),
    "build_none_on_the_size_class": (b"ctorch\nSize\nNb", True),
    "setitems_on_the_device_class": (b"ctorch\ndevice\n(K\x01K\x01u", False),
    "build_on_a_tensor_class": (b"ctorch\nFloatTensor\nNb", False),
    "rebuild_parameter_of_a_dict": (b"ctorch._utils\n_rebuild_parameter\n(}\x88NtR", False),
    "rebuild_parameter_none_with_an_int": (b"ctorch._utils\n_rebuild_parameter\n(NK\x01NtR", False),
    "rebuild_parameter_none_with_true": (b"ctorch._utils\n_rebuild_parameter\n(N\x88NtR", True),
    "appends_on_an_empty_size": (b"ctorch\nSize\n)R(K\x01e", False),
    "build_list_on_an_empty_size": (b"ctorch\nSize\n)R]b", False),
    "append_on_a_device": (b"ctorch\ndevice\nX\x03\x00\x00\x00cpu\x85RK\x01a", False),
    "newobj_ex_device_of_none": (b"ctorch\ndevice\nN\x85}\x92", False),
    "encode_none": (b"c_codecs\nencode\nN\x85R", False),
    "encode_str": (b"c_codecs\nencode\nX\x01\x00\x00\x00a\x85R", True),
}


def _torch_oracle_reaches(data: bytes) -> bool:
    import torch  # the real callables (torch's weights_only allowlist)

    allowed = torch._weights_only_unpickler._get_allowed_globals()

    class Only(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if f"{module}.{name}" in allowed:
                return allowed[f"{module}.{name}"]
            raise pickle.UnpicklingError(f"reached {module}.{name}")

    try:
        Only(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - the error says how far the real load went
        return str(e) == "reached os.system"
    return False


@pytest.mark.parametrize("name", sorted(_TORCH_CALLS))
def test_torch_allowlisted_calls_stop_like_torch(tmp_path: Path, name: str) -> None:
    head, goes_on = _TORCH_CALLS[name]
    data = b"\x80\x04" + head + b"0cos\nsystem\n\x8c\x04echo\x85R."
    assert _torch_oracle_reaches(data) is goes_on
    p = tmp_path / "case.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert ("os.system" in {g.qualname for g in inv.globals}) is goes_on


@pytest.mark.parametrize(("offset", "shape", "fits"), [(0, (1,), True), (1, (1,), False), (0, (2,), False),
                                                        (0, (0,), True)])
def test_zip_storage_bounds_match_torch(tmp_path: Path, offset: int, shape: tuple[int, ...], fits: bool) -> None:
    import torch

    from test_pickle_storage_bounds import torch_zip  # type: ignore[import-not-found, unused-ignore]  # tests/ is on sys.path

    path = torch_zip(tmp_path / "t.pt", offset, shape)
    try:
        torch.load(path, weights_only=True)
        loaded = True
    except RuntimeError as e:
        assert "not resizable" in str(e)
        loaded = False
    assert loaded is fits
    inv = ckptlint.inspect(path)
    assert (not [s for s in inv.stops if s.stream == "archive/data.pkl"]) is fits


# Fuzz repros where the stand-ins' reading is also CPython's with the real objects: the argument
# list of a REDUCE is a builtin class (seed 1 index 92888, shrunk); a bytearray made read-only by
# READONLY_BUFFER is a memoryview, which has no append.
_REPROS = {
    "reduce_args_builtin_class": b"\x80\x02cbuiltins\nlen\ncbuiltins\nbytearray\nR0cm0\nf0\n.",
    "readonly_bytearray_append": b"\x80\x05cm1\nf1\n0\x96\x01\x00\x00\x00\x00\x00\x00\x00a\x98K\x01acm0\nf0\n.",
}


@pytest.mark.parametrize("name", sorted(_REPROS))
def test_fuzz_repros_stop_like_cpython(tmp_path: Path, name: str) -> None:
    data = _REPROS[name]
    want, ok = oracle(data, tmp_path)["loads"]
    got, read = ours(data, tmp_path, "raw")
    assert not ok and "m0.f0" not in want
    assert got == want and not read


@pytest.mark.parametrize("case", ["stride_is_an_int", "size_is_an_int", "offset_is_none", "size_holds_a_float",
                                  "size_and_stride_lengths_differ", "negative_stride", "requires_grad_is_an_int",
                                  "an_int_tensor_requires_grad", "metadata_is_a_list"])
def test_view_arguments_match_torch(tmp_path: Path, case: str) -> None:
    import torch

    from test_pickle_storage_bounds import SET_ARGS  # type: ignore[import-not-found, unused-ignore]

    path = torch_zip_view(tmp_path, SET_ARGS[case])
    with pytest.raises((TypeError, RuntimeError, AssertionError)):
        torch.load(path, weights_only=True)
    assert [s for s in ckptlint.inspect(path).stops if s.stream == "archive/data.pkl"]


def torch_zip_view(tmp_path: Path, view: bytes) -> Path:
    from test_pickle_storage_bounds import torch_zip  # type: ignore[import-not-found, unused-ignore]

    path: Path = torch_zip(tmp_path / "t.pt", 0, (), view=view)
    return path
