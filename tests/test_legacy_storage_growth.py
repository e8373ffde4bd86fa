"""Legacy files: ``Tensor.set_`` grows a storage too small for a tensor's sizes and strides while the
main pickle rebuilds the tensor; torch then reads the storage's bytes from the file and checks them
against the GROWN size ("storage has wrong byte size"). The reader applies the same growth."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
import tarcraft as tc
from ckptlint.checker import check_file


def _legacy(tmp_path: Path, rows: int) -> Path:
    pid = b"(" + tc.uni("storage") + tc.glob("torch", "HalfStorage") + tc.uni("k") + tc.uni("cpu") + b"K\x06Nt"
    tensor = (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"QK\x00" + tc.pint(rows) + b"K\x03\x86"
              + b"K\x03K\x01\x86\x89" + tc.glob("collections", "OrderedDict") + b")RtR")
    body = tc.glob("collections", "OrderedDict") + b")R" + tc.uni("w") + tensor + b"s"
    p = tmp_path / f"rows{rows}.pt"
    p.write_bytes(tc.legacy_file(obj_body=body, keys=tc.p2(b"]" + tc.uni("k") + b"a"),
                                 tail=struct.pack("<q", 6) + b"\0" * 12))
    return p


def test_a_tensor_that_grows_its_storage_fails_the_size_check(torch: ModuleType, tmp_path: Path) -> None:
    p = _legacy(tmp_path, 127)  # 127 x 3 halfs need 762 bytes; the file holds 6 elements (12 bytes)
    for weights_only in (False, True):
        with pytest.raises(RuntimeError, match="wrong byte size"):
            torch.load(p, weights_only=weights_only)
    (stop,) = ckptlint.inspect(p).stops
    assert stop.stream == "pickle#4" and "grew it to 762" in stop.reason
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False


def test_a_tensor_inside_its_storage_loads(torch: ModuleType, tmp_path: Path) -> None:
    p = _legacy(tmp_path, 2)
    assert torch.load(p, weights_only=True)["w"].shape == (2, 3)
    inv = ckptlint.inspect(p)
    assert not inv.stops and [t.shape for t in inv.tensors] == [(2, 3)]
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is True
