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
    _inv, _, recs = check_file(save(obj, tmp_path / "d.pt", fmt))
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
@pytest.mark.parametrize("protocol", [1, 2, 3, 4, 5])  # 0: torch cannot load its own zip (str persistent ids)
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
    _inv, loaded, recs = check_file(save(obj, tmp_path / "params.pt"))
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


def test_sparse_tensors(tmp_path):
    x = torch.randn(4, 6)
    obj = {
        "coo": x.to_sparse(), "coo_half": x.half().to_sparse(), "hybrid": torch.randn(4, 3, 2).to_sparse(1),
        "csr": x.to_sparse_csr(), "csc": x.to_sparse_csc(),
        "bsr": x.to_sparse_bsr((2, 2)), "bsc": x.to_sparse_bsc((2, 3)),
        "int_coo": torch.arange(6).reshape(2, 3).to_sparse(),
    }
    path = save(obj, tmp_path / "sparse.pt")
    loaded = torch.load(path, weights_only=True)
    inv = ckptlint.inspect(path)
    recs = {r.path: r for r in inv.tensors}
    assert set(recs) == {(k,) for k in loaded}
    for k, t in loaded.items():
        r = recs[(k,)]
        got = (r.dtype, r.shape, r.layout, r.device)
        want = (str(t.dtype).removeprefix("torch."), tuple(t.shape), str(t.layout).removeprefix("torch."),
                str(t.device))
        assert got == want, k


def test_meta_tensors(tmp_path):
    # meta tensors carry no storage: ckptlint reports none, torch rebuilds them on "meta".
    obj = {"m": torch.empty(3, 4, device="meta"), "mt": torch.empty(4, 5, device="meta", dtype=torch.bfloat16).t()}
    path = save(obj, tmp_path / "meta.pt")
    loaded = torch.load(path, weights_only=True)
    recs = {r.path: r for r in ckptlint.inspect(path).tensors}
    assert set(recs) == {(k,) for k in loaded}
    for k, t in loaded.items():
        r = recs[(k,)]
        assert (r.dtype, r.shape, r.stride, r.storage_offset, r.device) == (
            str(t.dtype).removeprefix("torch."), tuple(t.shape), tuple(t.stride()), t.storage_offset(), "meta")
        assert r.storage_key is None and r.storage_bytes is None


def test_quantized_tensors(tmp_path):
    x = torch.randn(4, 6)
    obj = {
        "per_tensor": torch.quantize_per_tensor(x, 0.1, 3, torch.quint8),
        "per_tensor_i8": torch.quantize_per_tensor(x, 0.05, 0, torch.qint8),
        "per_tensor_i32": torch.quantize_per_tensor(x, 0.05, 0, torch.qint32),
        "per_channel": torch.quantize_per_channel(x, torch.rand(4) + 0.01, torch.zeros(4, dtype=torch.long), 0,
                                                  torch.qint8),
    }
    for fmt in sorted(FORMATS):
        check_file(save(obj, tmp_path / f"q-{fmt}.pt", fmt))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("case", ["tensor", "list", "tuple", "param"])
def test_top_level_objects(case, fmt, tmp_path):
    w = torch.randn(3, 4)
    obj = {"tensor": w, "list": [w, w.t(), 5], "tuple": (w[1:], {"k": w}),
           "param": torch.nn.Parameter(w)}[case]
    _inv, _, recs = check_file(save(obj, tmp_path / "top.pt", fmt))
    if case == "tensor":
        assert list(recs) == [()]


def test_unusual_keys(tmp_path):
    w = torch.randn(2)
    obj = {"ключ.weight": w, "x" * 3000: w[1:], "": torch.ones(1), "a.b/c d": torch.zeros(2), -1: w}
    _inv, _, recs = check_file(save(obj, tmp_path / "keys.pt"))
    assert ("x" * 3000,) in recs


def test_zip64_many_entries(tmp_path):
    # more than 65535 zip entries: torch writes a ZIP64 end of central directory
    obj = {f"t{i}": torch.ones(1) for i in range(66000)}
    path = save(obj, tmp_path / "z64.pt")
    tail = path.read_bytes()[-200:]
    assert b"PK\x06\x06" in tail
    inv, _, _ = check_file(path)
    assert len(inv.tensors) == 66000


def test_in_memory_save_and_odd_file_names(tmp_path):
    import io
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "v": torch.ones(2)[1:]}, buf)  # archive prefix "archive"
    (tmp_path / "bytes.bin").write_bytes(buf.getvalue())
    assert check_file(tmp_path / "bytes.bin")[0].facts.zip_prefix == "archive"
    for name in ("вес.модель.pt", "no_ext", "a.b.c.pth"):
        check_file(save({"w": torch.randn(2, 2).t()}, tmp_path / name))
