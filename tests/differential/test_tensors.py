"""Tensor metadata, views, shared storages and pickle protocols against torch's own load."""

from __future__ import annotations

import pytest
import torch

import ckptlint
from _oracle import check_file

DTYPES = [
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
    torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128,
]
# Saved through _rebuild_tensor_v3 (the dtype travels in the rebuild call, not the storage type).
NEW_DTYPES = [torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16, torch.uint32, torch.uint64]

FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}


def make(dtype, shape=(3, 4)):
    return torch.arange(int(torch.tensor(shape).prod())).reshape(shape).to(dtype)


def save(obj, path, fmt="zip", **kw):
    torch.save(obj, path, **FORMATS[fmt], **kw)
    return path


# torch's legacy loader cannot rebuild the new dtypes (it asks UntypedStorage for a dtype):
# such files have no oracle, so they are written in the zip format only.
DTYPE_CASES = [(d, f) for d in DTYPES + NEW_DTYPES for f in sorted(FORMATS) if f == "zip" or d in DTYPES]


@pytest.mark.parametrize(("dtype", "fmt"), DTYPE_CASES, ids=str)
def test_dtype(dtype, fmt, tmp_path):
    obj = {"x": make(dtype), "scalar": make(dtype, ()), "empty": make(dtype, (0, 5)),
           "t": make(dtype, (4, 6)).t(), "step": make(dtype, (4, 6))[:, ::2]}
    inv, _, recs = check_file(save(obj, tmp_path / "d.pt", fmt))
    if dtype in NEW_DTYPES:
        assert {r.rebuild for r in recs.values()} == {"_rebuild_tensor_v3"}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_all_dtypes_in_one_file(fmt, tmp_path):
    obj = {str(d): make(d, (2, 3)) for d in DTYPES + (NEW_DTYPES if fmt == "zip" else [])}
    check_file(save(obj, tmp_path / "all.pt", fmt))


def _views():
    w = torch.randn(6, 8)
    base = torch.arange(30.0)
    return {
        "tied": {"a": w, "b": w},
        "tied_slice": {"a": w, "b": w[1:]},
        "slices": {"base": base, "mid": base[2:5], "tail": base[20:], "step": base[1::3]},
        "views": {"v": base.view(5, 6), "vt": base.view(5, 6).t(), "narrow": base.view(5, 6)[:, 2:4]},
        "only_view": {"v": torch.arange(100.0)[10:20]},  # the whole storage is saved, not the slice
        "transposes": {"t": w.t(), "perm": torch.randn(2, 3, 4).permute(2, 0, 1), "cols": w[:, ::2]},
        "expanded": {"e": torch.randn(3, 1).expand(3, 5), "z": torch.zeros(())},
        "empty": {"e0": torch.empty(0), "e1": torch.empty(3, 0, 2), "from_slice": base[5:5]},
        "list_of_views": [base, base[3:], [base[:2], (w, w.t())]],
        "mixed_dtype_views": {"f": torch.randn(4, 4), "i": torch.arange(8, dtype=torch.int16)[::2]},
        "channels_last": {"cl": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)},
    }


VIEWS = _views()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("case", sorted(VIEWS))
def test_views_and_shared_storages(case, fmt, tmp_path):
    inv, _, recs = check_file(save(VIEWS[case], tmp_path / "v.pt", fmt))
    if case.startswith("tied"):
        assert len({r.storage_key for r in recs.values()}) == 1
        assert inv.shared_storages()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocols(protocol, fmt, tmp_path):
    w = torch.randn(4, 4)
    obj = {"w": w, "v": w[1:], "h": torch.randn(3, dtype=torch.float16), "n": {"l": [torch.ones(2), 3]}}
    if fmt == "zip":
        obj["f8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    # protocols 4/5: torch's weights_only unpickler refuses them; check_file then trusts its own file.
    inv, _, _ = check_file(save(obj, tmp_path / "p.pt", fmt, pickle_protocol=protocol))
    assert inv.facts.pickle_protocol == protocol
    assert inv.structure["n"]["l"][1] == 3


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_nested_containers(fmt, tmp_path):
    obj = {
        "a": [torch.ones(1), (torch.zeros(2, 2), {"deep": [[torch.arange(3)]]})],
        1: torch.ones(3),  # int keys as in optimizer state
        "none": None,
        "tuple_keyed": {2.5: torch.ones(1), True: torch.zeros(1)},
    }
    inv, _, _ = check_file(save(obj, tmp_path / "n.pt", fmt))
    assert inv.structure["none"] is None


def test_parameters_in_a_dict(tmp_path):
    p = torch.nn.Parameter(torch.randn(3, 3))
    q = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    obj = {"p": p, "q": q, "plain": torch.randn(2).requires_grad_()}
    # weights_only allows Parameters: is_parameter and requires_grad come from torch's load.
    inv, loaded, recs = check_file(save(obj, tmp_path / "params.pt"))
    assert isinstance(loaded["p"], torch.nn.Parameter)
    assert recs[("p",)].is_parameter and not recs[("plain",)].is_parameter


def test_many_small_tensors(tmp_path):
    obj = {f"layer{i}.weight": torch.randn(i % 7, 3) for i in range(2000)}
    inv, _, _ = check_file(save(obj, tmp_path / "many.pt"))
    assert len(inv.tensors) == 2000


def test_big_storage_offsets(tmp_path):
    base = torch.zeros(3_000_000, dtype=torch.uint8)
    check_file(save({"end": base[2_999_990:], "mid": base[1_500_000:1_500_010]}, tmp_path / "o.pt"))
    assert ckptlint.inspect(tmp_path / "o.pt").tensors[0].storage_bytes == 3_000_000
