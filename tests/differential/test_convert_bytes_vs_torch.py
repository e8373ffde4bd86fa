"""The bytes ``ckptlint convert`` writes for each tensor, against ``torch.load`` itself (issue #15).

For every tensor the Inventory records, :class:`ckptlint.conversion.source.TensorSource` yields a byte stream; it
must equal ``tensor.contiguous()``'s bytes as ``torch.load(path, weights_only=True)`` gives them, bit for bit:
views, transposes, slices, ``expand`` (stride 0), storage offsets and shared storages; every dtype safetensors
holds; big-endian zips (written as a big-endian machine writes them: ``byteorder`` "big", storages swapped);
deflated members; legacy files; old tar files; TorchScript archives; shard indexes. Small chunks and a small
gather window make the bounded-memory paths (blocked output, split gathers) run on small tensors too.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tarcraft as tc
from ckptlint.conversion.source import TensorDataError, UnsupportedTensor, open_source
from ckptlint.formats import read_inventory
from ckptlint.inventory import Inventory, TensorRecord

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
          torch.float8_e5m2fnuz, torch.uint16, torch.uint32, torch.uint64, torch.complex64)
LEGACY_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                 torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64)
"""The legacy writer's typed storages (torch.load of a legacy uint16/fp8 file raises: no storage class)."""


def _torch_bytes(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    dense = torch.empty(tuple(t.shape), dtype=t.dtype).copy_(t.detach())  # standard strides (a (1,) view may be 3)
    return bytes(dense.reshape(-1).view(torch.uint8).numpy().tobytes())


def _views(dtypes: tuple[torch.dtype, ...]) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(6, 10) * 7
    out: dict[str, torch.Tensor] = {}
    for dt in dtypes:
        name = str(dt).removeprefix("torch.")
        full = base.to(dt) if dt != torch.bool else base > 0
        out[f"{name}.full"] = full
        out[f"{name}.t"] = full.t()
        out[f"{name}.slice"] = full[1:5:2, 3:]
        out[f"{name}.offset"] = full[4]
        out[f"{name}.expand"] = full[2, :3].unsqueeze(0).expand(4, 3)
        out[f"{name}.scalar"] = full[5, 9]
        out[f"{name}.permute"] = full.reshape(2, 3, 10).permute(2, 0, 1)
    out["shared.a"] = out["shared.b"] = torch.arange(12.0)  # tied weights: one storage
    out["shared.view"] = out["shared.a"].view(3, 4)[:, 1:3]
    out["empty"] = torch.empty(0, 5)
    out["param"] = torch.nn.Parameter(torch.ones(3, 2).t())
    return out


def _compare(path: Path, expected: Callable[[TensorRecord], torch.Tensor], *, chunk: int = 24,
             window: int = 64, inv: Inventory | None = None) -> int:
    """Every tensor of ``path``'s Inventory streams exactly ``expected(rec)``'s bytes; returns how many."""
    inv = inv or read_inventory(path)
    assert inv.tensors
    with open_source(path, inv) as src:
        src.window = window
        for rec in inv.tensors:
            want = expected(rec)
            pieces = list(src.tensor_chunks(rec, chunk))
            assert all(len(p) <= max(chunk, want.element_size()) for p in pieces), rec.key
            assert b"".join(pieces) == _torch_bytes(want), f"{rec.key}: bytes differ from torch.load's"
            assert src.nbytes(rec) == want.numel() * want.element_size()
            assert src.safetensors_dtype(rec)
    return len(inv.tensors)


def _lookup(obj: Any) -> Callable[[TensorRecord], torch.Tensor]:
    def get(rec: TensorRecord) -> torch.Tensor:
        if isinstance(obj, dict) and ".".join(map(str, rec.path)) in obj:
            return obj[".".join(map(str, rec.path))]
        cur = obj
        for k in rec.path:
            cur = cur[k]
        return cur
    return get


def _load(path: Path) -> Any:
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(("chunk", "window"), [(24, 64), (1 << 20, 1 << 20), (3, 1)])
def test_zip_views_of_every_dtype(tmp_path: Path, chunk: int, window: int) -> None:
    path = tmp_path / "views.pt"
    torch.save(_views(DTYPES), path)
    assert _compare(path, _lookup(_load(path)), chunk=chunk, window=window) == len(_views(DTYPES))


def test_legacy_views_of_every_dtype_it_writes(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save(_views(LEGACY_DTYPES), path, _use_new_zipfile_serialization=False)
    inv = read_inventory(path)
    assert inv.format == "torch-legacy"
    assert _compare(path, _lookup(_load(path)), inv=inv) == len(_views(LEGACY_DTYPES))


def _big_endian(src: Path, dest: Path) -> Path:
    """``src`` as a big-endian machine writes it: byteorder "big", each storage swapped per element
    (complex per component); an untyped storage (``uint8``: uint16/32/64 and fp8 tensors) stays as it is,
    which is what torch.load's ``byteswap(uint8)`` undoes on a little-endian machine."""
    dtypes = {s.key: s.dtype for s in read_inventory(src).storages}
    unit = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "complex64": 4, "float16": 2, "bfloat16": 2,
            "int16": 2}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                size = unit.get(dtypes[info.filename.rsplit("/", 1)[1]], 1)
                if size > 1:
                    data = np.frombuffer(data, dtype=f"<u{size}").astype(f">u{size}").tobytes()
            zout.writestr(info, data)
    return dest


def test_big_endian_zip_is_little_endian_as_torch_loads_it(tmp_path: Path) -> None:
    little = tmp_path / "little.pt"
    torch.save(_views(DTYPES), little)
    big = _big_endian(little, tmp_path / "big.pt")
    inv = read_inventory(big)
    assert inv.facts.byteorder == "big"
    loaded = _load(big)
    # torch itself gives the little-endian values back for every typed storage
    assert torch.equal(loaded["float32.t"], _load(little)["float32.t"])
    assert _compare(big, _lookup(loaded), inv=inv) == len(_views(DTYPES))


def test_deflated_zip_members(tmp_path: Path) -> None:
    stored = tmp_path / "stored.pt"
    torch.save(_views((torch.float32, torch.bfloat16, torch.int8)), stored)
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(stored) as zin, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert _compare(deflated, _lookup(_load(deflated))) > 20


class _Net(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(5, 3)
        self.emb = torch.nn.Embedding(7, 5)
        self.register_buffer("table", torch.arange(20.0).reshape(4, 5).t())
        self.register_buffer("steps", torch.tensor(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x + self.table.sum())


def test_torchscript_parameters(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_Net()), path)
    inv = read_inventory(path)
    assert inv.format == "torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = dict(torch.jit.load(path).state_dict())
    assert _compare(path, _lookup(state), inv=inv) == len(state)


def test_sharded_bin_checkpoint(tmp_path: Path) -> None:
    views = _views((torch.float32, torch.float16))
    keys = sorted(views)
    half = len(keys) // 2
    torch.save({k: views[k] for k in keys[:half]}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({k: views[k] for k in keys[half:]}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {k: f"pytorch_model-0000{1 if i < half else 2}-of-00002.bin" for i, k in enumerate(keys)}
    index = tmp_path / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded = {**_load(tmp_path / weight_map[keys[0]]), **_load(tmp_path / weight_map[keys[-1]])}
    assert _compare(index, _lookup(loaded)) == len(keys)


def test_old_tar_checkpoint(tmp_path: Path) -> None:
    tt = tc.TorchTar(tensors={"w": [1.5, -2.0, 3.25, 4.0], "b": [0.5], "c": [7.0, 8.0, 9.0]})
    path = tmp_path / "old.tar"
    path.write_bytes(tc.tar_bytes(tt.members()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(path, weights_only=False)  # the test's own file: only torch's storage/tensor types
    assert _compare(path, _lookup(loaded)) == 3


def test_a_large_transpose_through_a_small_window(tmp_path: Path) -> None:
    torch.manual_seed(1)
    w = torch.randn(300, 257)
    path = tmp_path / "big.pt"
    torch.save({"wt": w.t(), "cols": w[:, ::3], "w": w}, path)
    assert _compare(path, _lookup(_load(path)), chunk=4096, window=8192) == 3


def test_tensors_safetensors_cannot_hold_are_refused_by_key(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"ok": torch.ones(2), "c128": torch.ones(2, dtype=torch.complex128),
                "q": torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8),
                "sparse": torch.eye(3).to_sparse()}, path)
    inv = read_inventory(path)
    refused: dict[str, str] = {}
    with open_source(path, inv) as src:
        for rec in inv.tensors:
            try:
                src.check(rec)
            except UnsupportedTensor as e:
                refused[e.key] = e.reason
    assert set(refused) >= {"c128", "q", "sparse"} and "ok" not in refused
    assert "complex128" in refused["c128"]


def test_a_storage_record_cut_after_reading_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    torch.save({"w": torch.arange(64.0)}, path)
    inv = read_inventory(path)
    raw = bytearray(path.read_bytes())
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info, data[:16] if "/data/" in info.filename else data)
    path.write_bytes(buf.getvalue())
    with open_source(path, inv) as src, pytest.raises(TensorDataError, match="'w'"):
        b"".join(src.tensor_chunks(inv.tensors[0]))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_raw_pickle_of_tensors(tmp_path: Path, protocol: int) -> None:
    """``pickle.dump`` of tensors (each storage a nested ``torch.save``; protocols 0-2 hold it as text): the
    bytes are the dumped tensors' (a pickle round trip gives them back exactly; nothing is unpickled here)."""
    import pickle

    views = _views((torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.complex64))
    path = tmp_path / "raw.pkl"
    with path.open("wb") as f:
        pickle.dump(views, f, protocol=protocol)
    inv = read_inventory(path)
    assert inv.format == "pickle"
    assert _compare(path, _lookup(views), inv=inv) == len(views)


class _Exported(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.register_buffer("table", torch.arange(12.0).reshape(3, 4).t())
        self.bf = torch.nn.Parameter(torch.randn(5, dtype=torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + self.table.sum() + self.bf.float().sum()


def test_torch_export_archive_weights(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(_Exported(), (torch.randn(2, 4),)), path)
        state = dict(torch.export.load(path).state_dict)
    inv = read_inventory(path)
    assert inv.format == "torch-export"
    assert _compare(path, _lookup(state), inv=inv) == len(state) == 4


def test_an_expand_to_a_huge_shape_is_refused_not_written(tmp_path: Path) -> None:
    path = tmp_path / "expand.pt"
    torch.save({"small": torch.ones(1).expand(1000), "huge": torch.ones(1).expand(1 << 20, 1 << 12)}, path)
    inv = read_inventory(path)
    with open_source(path, inv) as src:
        src.check(next(r for r in inv.tensors if r.key == "small"))
        with pytest.raises(UnsupportedTensor, match=r"'huge'.*expanded view"):
            src.check(next(r for r in inv.tensors if r.key == "huge"))


def test_torchscript_ignores_a_big_endian_record_as_jit_load_does(tmp_path: Path) -> None:
    """torch.jit.load never byte-swaps (only torch.load's zip reader reads ``byteorder``): neither does convert."""
    src = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_Net()), src)
    big = tmp_path / "scripted_big.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(big, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename and len(data) % 4 == 0:
                data = np.frombuffer(data, dtype="<u4").astype(">u4").tobytes()
            zout.writestr(info, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = dict(torch.jit.load(big).state_dict())
    assert not torch.equal(state["lin.weight"], dict(torch.jit.load(src).state_dict())["lin.weight"])
    assert _compare(big, _lookup(state)) == len(state)


@pytest.mark.parametrize("legacy", [False, True])
def test_random_strided_views_of_one_storage(tmp_path: Path, legacy: bool) -> None:
    """200 random ``as_strided`` views (any shape, stride 0 included, any offset) over two storages, one file."""
    import random

    rng = random.Random(7)
    bases = {torch.float32: torch.arange(4096, dtype=torch.float32) * 1.5, torch.int64: torch.arange(4096) - 99}
    views: dict[str, torch.Tensor] = {}
    for i in range(200):
        nd = rng.randint(0, 4)
        shape = [rng.randint(0, 6) for _ in range(nd)]
        stride = [rng.choice([0, 1, 2, 3, 7, 40, 300]) for _ in range(nd)]
        span = sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) if all(shape) else 0
        offset = rng.randint(0, 4095 - span) if span < 4095 else 0
        if span + offset > 4095:
            continue
        views[f"v{i}"] = bases[rng.choice(list(bases))].as_strided(shape, stride, offset)
    path = tmp_path / "views.pt"
    torch.save(views, path, _use_new_zipfile_serialization=not legacy)
    assert _compare(path, _lookup(_load(path)), chunk=rng.choice([8, 64]), window=rng.choice([16, 256])) == len(views)


def test_dcp_folder_tensors_saved_whole(tmp_path: Path) -> None:
    """torch.distributed.checkpoint (one process): each tensor a torch.save nested in the .distcp file."""
    import torch.distributed.checkpoint as dcp

    torch.manual_seed(3)
    state = {"w": torch.randn(4, 3), "b": torch.arange(5), "h": torch.randn(6).bfloat16(), "t": torch.randn(3, 5).t(),
             "nested": {"x": torch.ones(2, 2), "i8": torch.arange(-3, 3, dtype=torch.int8)}}
    folder = tmp_path / "dcp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(folder))
    inv = read_inventory(folder)
    assert inv.format == "dcp"
    assert _compare(folder, _lookup(state), inv=inv) == 6
    with open_source(folder, inv) as src:
        spans = [src.file_span(rec) for rec in inv.tensors]
    assert all(s is None or s.path.endswith(".distcp") for s in spans) and any(spans)


_TWO_RANKS = r"""
import os, sys, warnings
import torch, torch.distributed as dist, torch.multiprocessing as mp

def work(rank, out):
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{out}.init", rank=rank, world_size=2)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    import torch.distributed.checkpoint as dcp
    mesh = init_device_mesh("cpu", (2,))
    full = {"rows": torch.arange(35.0).reshape(7, 5), "half": torch.arange(6).bfloat16(),
            "cols": torch.arange(24.0).reshape(4, 6), "same": torch.arange(4.0),
            "cube": torch.arange(60).reshape(3, 4, 5)}
    place = {"rows": Shard(0), "half": Shard(0), "cols": Shard(1), "same": Replicate(), "cube": Shard(2)}
    dcp.save({k: distribute_tensor(v, mesh, [place[k]]) for k, v in full.items()}, checkpoint_id=out)
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(work, args=(sys.argv[1],), nprocs=2)
"""


def test_dcp_tensors_saved_in_chunks_by_two_ranks(tmp_path: Path) -> None:
    """Two processes save DTensors sharded by rows, by columns, along a last dimension, and replicated: each
    tensor is written in the whole tensor's C order from its chunks (two .distcp files)."""
    import subprocess

    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS)
    folder = tmp_path / "dcp"
    done = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    full = {"rows": torch.arange(35.0).reshape(7, 5), "half": torch.arange(6).bfloat16(),
            "cols": torch.arange(24.0).reshape(4, 6), "same": torch.arange(4.0),
            "cube": torch.arange(60).reshape(3, 4, 5)}
    inv = read_inventory(folder)
    assert _compare(folder, _lookup(full), inv=inv) == 5
    with open_source(folder, inv) as src:
        assert src.file_span(next(r for r in inv.tensors if r.key == "rows")) is None  # two pieces of two files
