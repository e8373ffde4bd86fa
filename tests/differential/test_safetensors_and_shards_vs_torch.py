"""safetensors files and sharded checkpoints (index JSON + shards) against their real loaders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file, save_model
from torchvision import models as M

import ckptlint

from _oracle import assert_inventory_matches, load_own_file

ST_DTYPES = [
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
    torch.int32, torch.int64, torch.bool, torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2,
    torch.uint16, torch.uint32, torch.uint64,
]


def by_path(d):
    return {(k,): v for k, v in d.items()}


@pytest.mark.parametrize("dtype", ST_DTYPES, ids=str)
def test_safetensors_dtype(dtype, tmp_path):
    tensors = {"x": torch.arange(12).reshape(3, 4).to(dtype), "scalar": torch.ones((), dtype=dtype),
               "empty": torch.zeros(0, 3, dtype=dtype)}
    path = tmp_path / "d.safetensors"
    save_file(tensors, str(path))
    inv = ckptlint.inspect(path)
    assert inv.format == "safetensors"
    assert_inventory_matches(inv, by_path(load_file(str(path))))


def test_safetensors_state_dict_with_metadata(tmp_path):
    sd = M.resnet18().state_dict()
    path = tmp_path / "r18.safetensors"
    save_file(sd, str(path), metadata={"format": "pt", "note": "differential"})
    inv = ckptlint.inspect(path)
    loaded = load_file(str(path))
    assert_inventory_matches(inv, by_path(loaded))
    assert inv.facts.extra["metadata"] == {"format": "pt", "note": "differential"}


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.body = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 50, bias=False)
        self.head.weight = self.emb.weight


def test_safetensors_save_model_with_tied_weights(tmp_path):
    model = TiedLM()
    path = tmp_path / "tied.safetensors"
    save_model(model, str(path))
    inv = ckptlint.inspect(path)
    assert inv.format == "safetensors"
    loaded = load_file(str(path))
    assert_inventory_matches(inv, by_path(loaded))
    # one of the tied names is stored, the other is an alias in __metadata__
    sd_keys = set(model.state_dict())
    aliases = {k: v for k, v in inv.facts.extra["metadata"].items() if k in sd_keys}
    assert set(loaded) | set(aliases) == sd_keys
    assert len(aliases) == 1
    assert any("tied" in n for n in inv.notes)


def _split(sd):
    keys = list(sd)
    half = len(keys) // 2
    return {k: sd[k] for k in keys[:half]}, {k: sd[k] for k in keys[half:]}


def _write_index(path, shards, total):
    weight_map = {k: name for name, part in shards.items() for k in part}
    path.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


def test_sharded_safetensors(tmp_path):
    sd = M.mobilenet_v3_small().state_dict()
    parts = dict(zip(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], _split(sd), strict=True))
    for name, part in parts.items():
        save_file({k: v.contiguous() for k, v in part.items()}, str(tmp_path / name))
    index = tmp_path / "model.safetensors.index.json"
    _write_index(index, parts, sum(v.nbytes for v in sd.values()))
    expected = {}
    for name in parts:
        expected.update(load_file(str(tmp_path / name)))
    inv = ckptlint.inspect(index)
    assert inv.format == "sharded-index"
    assert set(inv.facts.extra["shards"]) == set(parts)
    assert {t.key for t in inv.tensors} == set(sd)
    recs = assert_inventory_matches(inv, by_path(expected))
    for k, t in sd.items():
        assert recs[(k,)].dtype == str(t.dtype).removeprefix("torch.") and recs[(k,)].shape == tuple(t.shape)
    assert not inv.notes


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_sharded_torch_bin(fmt, tmp_path):
    sd = M.squeezenet1_0().state_dict()
    first, second = _split(sd)
    w = torch.randn(5, 5)
    second = {**second, "tied.a": w, "tied.b": w}  # tied within one shard: one storage
    parts = {"pytorch_model-00001-of-00002.bin": first, "pytorch_model-00002-of-00002.bin": second}
    for name, part in parts.items():
        torch.save(part, tmp_path / name, _use_new_zipfile_serialization=(fmt == "zip"))
    index = tmp_path / "pytorch_model.bin.index.json"
    _write_index(index, parts, 0)
    expected = {}
    for name in parts:
        expected.update(load_own_file(tmp_path / name))
    inv = ckptlint.inspect(index)
    assert inv.format == "sharded-index"
    assert {t.key for t in inv.tensors} == set(first) | set(second)
    recs = assert_inventory_matches(inv, by_path(expected))
    assert recs[("tied.a",)].storage_key == recs[("tied.b",)].storage_key
    assert not inv.notes
