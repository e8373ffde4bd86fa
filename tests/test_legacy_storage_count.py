"""A legacy storage's 8-byte element count is multiplied by the element size in C (int64 times
uint64, kept as int64): a count that wraps to the declared byte size passes torch's size check and
the file loads (fuzz seed 403 index 1541); a count that wraps to anything else does not."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
import tarcraft as tc
from ckptlint.checker import check_file


def _legacy(tmp_path: Path, count: int) -> Path:
    pid = b"(" + tc.uni("storage") + tc.glob("torch", "HalfStorage") + tc.uni("k") + tc.uni("cpu") + b"K\x02Nt"
    tensor = (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"QK\x00K\x02\x85K\x01\x85\x89"
              + tc.glob("collections", "OrderedDict") + b")RtR")
    body = tc.glob("collections", "OrderedDict") + b")R" + tc.uni("w") + tensor + b"s"
    p = tmp_path / f"count{count:x}.pt"
    p.write_bytes(tc.legacy_file(obj_body=body, keys=tc.p2(b"]" + tc.uni("k") + b"a"),
                                 tail=struct.pack("<Q", count) + b"\0" * 4))
    return p


@pytest.mark.parametrize(("count", "loads"), [(2, True), ((1 << 63) + 2, True), ((1 << 63) + 3, False)],
                         ids=["plain", "wraps-to-4-bytes", "wraps-to-6-bytes"])
def test_storage_count_times_element_size_wraps_like_c(torch: ModuleType, tmp_path: Path, count: int,
                                                       loads: bool) -> None:
    p = _legacy(tmp_path, count)
    try:
        torch.load(p, weights_only=True)
        torch_loads = True
    except RuntimeError as e:
        assert "wrong byte size" in str(e)
        torch_loads = False
    assert torch_loads is loads
    assert ckptlint.inspect(p).stops is not loads
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is loads
