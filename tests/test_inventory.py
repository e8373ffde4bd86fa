"""The inventory's JSON form covers every field of its records."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from types import ModuleType

import ckptlint
from ckptlint.inventory import TensorRecord, _tensor_dict


def test_tensor_dict_has_every_field(tmp_path: Path, torch: ModuleType) -> None:
    torch.save({"w": torch.ones(2, 3).t()}, tmp_path / "a.pt")
    (t,) = ckptlint.inspect(tmp_path / "a.pt").tensors
    d = _tensor_dict(t)
    assert set(d) == {f.name for f in fields(TensorRecord)}
    assert d == {**asdict(t), "path": list(t.path), "shape": list(t.shape), "stride": list(t.stride)}


def test_negative_sizes_are_not_tensors(tmp_path: Path) -> None:
    # _rebuild_tensor_v2 with size (-1,): torch refuses it, so it is not recorded as a tensor. In a zip, where
    # persistent ids resolve (a raw pickle stops at BINPERSID, as CPython's pickle.load does).
    import zipfile

    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00J\xff\xff\xff\xff\x85K\x01\x85\x89"
            b"ccollections\nOrderedDict\n)RtR.")
    p = tmp_path / "neg.pt"
    with zipfile.ZipFile(p, "w") as z:
        for name, body in (("data.pkl", data), ("byteorder", b"little"), ("data/0", bytes(16)),
                           ("version", b"3\n")):
            z.writestr(f"neg/{name}", body)
    inv = ckptlint.inspect(p)
    assert inv.format == "torch-zip"
    assert [s.reason for s in inv.stops] == ["_rebuild_tensor_v2: Tensor.set_ refuses the size (-1,)"]  # torch raises
    assert inv.tensors == ()
    assert inv.structure is None  # the stream stopped before its value was built
