"""A tensor view larger than its zip storage: torch's ``_rebuild_tensor_v2`` calls ``Tensor.set_``, which must
grow the storage to ``computeStorageNbytes(size, stride, offset)``; a zip record's storage is not resizable, so
the load raises "Trying to resize storage that is not resizable" there and nothing after it runs (fuzz seed 21
index 5835). A legacy file's storages are allocated anew and grow (formats/legacy.py checks those)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import ckptlint


def tup(xs: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(b"K" + bytes([x]) for x in xs) + b"t"


HOOKS = b"ccollections\nOrderedDict\n)R"
"""backward_hooks as torch.save writes them: an empty OrderedDict."""


def torch_zip(path: Path, offset: int, shape: tuple[int, ...], payload: bytes = b"", *,
              view: bytes | None = None) -> Path:
    """One LongStorage of one element (8 bytes) and a view of it; ``payload`` after the tensor. ``view``:
    the pickled arguments after the storage as given (offset, size, stride, requires_grad, hooks …)."""
    strides = tuple(1 for _ in shape)
    view = view if view is not None else b"K" + bytes([offset]) + tup(shape) + tup(strides) + b"\x89" + HOOKS
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nLongStorage\n"
            b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ" + view + b"tR" + payload + b".")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", b"\x00" * 8)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


PAYLOAD = b"0cos\nsystem\nX\x04\x00\x00\x00echo\x85R"


@pytest.mark.parametrize(("offset", "shape", "fits"), [
    (0, (1,), True), (1, (1,), False), (0, (2,), False), (0, (0,), True), (5, (0, 3), True), (0, (1, 1), True),
])
def test_a_view_past_a_zip_storage_stops_the_load(tmp_path: Path, offset: int, shape: tuple[int, ...],
                                                  fits: bool) -> None:
    inv = ckptlint.inspect(torch_zip(tmp_path / "t.pt", offset, shape, PAYLOAD))
    assert ("os.system" in {g.qualname for g in inv.globals}) is fits
    stops = [s for s in inv.stops if s.stream == "archive/data.pkl"]
    assert bool(stops) is not fits
    if stops:
        assert "not resizable" in stops[0].reason


SET_ARGS = {  # arguments that Tensor.set_ refuses ("invalid combination of arguments" and the like)
    "stride_is_an_int": b"K\x00" + tup((1,)) + b"K\x01\x89" + HOOKS,
    "size_is_an_int": b"K\x00K\x01" + tup((1,)) + b"\x89" + HOOKS,
    "offset_is_none": b"N" + tup((1,)) + tup((1,)) + b"\x89" + HOOKS,
    "size_holds_a_float": b"K\x00(G?\xf0\x00\x00\x00\x00\x00\x00t" + tup((1,)) + b"\x89" + HOOKS,
    "size_and_stride_lengths_differ": b"K\x00" + tup((1, 1)) + tup((1,)) + b"\x89" + HOOKS,
    "negative_stride": b"K\x00" + tup((2,)) + b"(J\xff\xff\xff\xfft\x89" + HOOKS,
    # then tensor.requires_grad = <a bool, True only for floating dtypes> and set_tensor_metadata(<a dict>)
    "requires_grad_is_an_int": b"K\x00" + tup((1,)) + tup((1,)) + b"K\x01" + HOOKS,
    "an_int_tensor_requires_grad": b"K\x00" + tup((1,)) + tup((1,)) + b"\x88" + HOOKS,
    "metadata_is_a_list": b"K\x00" + tup((1,)) + tup((1,)) + b"\x89" + HOOKS + b"]K\x01a",
}


@pytest.mark.parametrize("case", sorted(SET_ARGS))
def test_view_arguments_set_refuses_stop_the_load(tmp_path: Path, case: str) -> None:
    inv = ckptlint.inspect(torch_zip(tmp_path / "t.pt", 0, (), PAYLOAD, view=SET_ARGS[case]))
    assert "os.system" not in {g.qualname for g in inv.globals}
    assert [s for s in inv.stops if s.stream == "archive/data.pkl"]


def test_calling_a_rebuilt_tensor_stops_the_load(tmp_path: Path) -> None:
    # REDUCE with the tensor _rebuild_tensor_v2 returned as the callable: "'Tensor' object is not callable"
    inv = ckptlint.inspect(torch_zip(tmp_path / "t.pt", 0, (1,), b")R" + PAYLOAD))
    assert "os.system" not in {g.qualname for g in inv.globals}
    (stop,) = [s for s in inv.stops if s.stream == "archive/data.pkl"]
    assert "not callable" in stop.reason
