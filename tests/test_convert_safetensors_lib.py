"""The safetensors package itself (numpy backend, no torch) reads what ``convert`` writes, and writes the same
bytes for the same tensors: the header layout is safetensors' own. huggingface_hub's shard split is the oracle
for ``--max-shard-size``. Integration tier: those packages are not in the unit tier's environment."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import ckptlint
from _convert_files import OD, T, expected_bytes, tensor, torch_zip
from ckptlint.conversion.writer import OutTensor, header_bytes, split_shards, total_size

pytestmark = pytest.mark.integration


def _writer(data: bytes) -> Callable[[BinaryIO], int]:
    def write(f: BinaryIO) -> int:
        return f.write(data)
    return write


def test_safe_open_reads_the_converted_file(tmp_path: Path) -> None:
    import numpy as np
    from safetensors import safe_open

    w = tensor("0", [float(i) for i in range(12)], (3, 4))
    views = {"w": w, "w_t": T(w.storage, (4, 3), (1, 4)), "col": T(w.storage, (3,), (4,), 2),
             "ids": tensor("1", [3, -1, 7], dtype="int64"), "mask": tensor("2", [1, 0, 1], dtype="bool"),
             "half": tensor("3", [0x3C00, 0xC000], dtype="float16")}
    src = torch_zip(tmp_path / "v.pt", OD(views), big_endian=True)
    r = ckptlint.convert(src, tmp_path / "v.safetensors")
    arrays: Any = np.arange(12, dtype=np.float32).reshape(3, 4)
    with safe_open(str(tmp_path / "v.safetensors"), framework="numpy") as f:
        assert f.metadata() == dict(r.metadata)
        assert sorted(f.keys()) == sorted(views)
        np.testing.assert_array_equal(f.get_tensor("w"), arrays)
        np.testing.assert_array_equal(f.get_tensor("w_t"), arrays.T)
        np.testing.assert_array_equal(f.get_tensor("col"), arrays[:, 2])
        np.testing.assert_array_equal(f.get_tensor("ids"), np.array([3, -1, 7]))
        np.testing.assert_array_equal(f.get_tensor("mask"), np.array([True, False, True]))
        np.testing.assert_array_equal(f.get_tensor("half"), np.array([1.0, -2.0], dtype=np.float16))
        for name, t in views.items():
            assert f.get_tensor(name).tobytes() == expected_bytes(t)


def test_the_same_tensors_give_the_bytes_safetensors_writes(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
              "b.weight": rng.standard_normal((3, 5)).astype(np.float32), "a": np.arange(7, dtype=np.int64),
              "z": np.array([True, False]), "m": rng.integers(0, 255, (2, 2, 2)).astype(np.uint8),
              "h": rng.standard_normal(9).astype(np.float16), "d": rng.standard_normal(1).astype(np.float64),
              "c": rng.integers(-9, 9, 4).astype(np.int16), "empty": np.zeros((0, 3), np.float32),
              "é": np.array([1, 2], np.int32), "u": np.array([5], np.uint32)}
    codes = {"float32": "F32", "int64": "I64", "bool": "BOOL", "uint8": "U8", "float16": "F16", "float64": "F64",
             "int16": "I16", "int32": "I32", "uint32": "U32"}
    tensors = [OutTensor(k, codes[str(a.dtype)], tuple(a.shape), a.nbytes, _writer(a.tobytes()))
               for k, a in arrays.items()]
    head, ordered = header_bytes(tensors, {})
    assert head + b"".join(arrays[t.name].tobytes() for t in ordered) == save(arrays)
    # with metadata: safetensors orders its entries as its hash map does (varies by process), the rest is equal
    metadata = {"format": "pt", "ckptlint_source": "x.pt", "tied": "b.weight"}
    head, ordered = header_bytes(tensors, metadata)
    theirs = save(arrays, metadata=metadata)
    assert len(head) == struct.unpack("<Q", theirs[:8])[0] + 8
    assert json.loads(head[8:]) == json.loads(theirs[8:len(head)])
    assert theirs[len(head):] == b"".join(arrays[t.name].tobytes() for t in ordered)


def test_shard_split_matches_huggingface_hub() -> None:
    from huggingface_hub.serialization._base import split_state_dict_into_shards_factory

    rng = random.Random(5)
    for _ in range(300):  # tensors of their own storage, and views / tied keys sharing one (counted once)
        state: dict[str, tuple[int, int | None, int]] = {}  # key -> (tensor bytes, storage id, storage bytes)
        storages: dict[int, int] = {}
        for i in range(rng.randint(1, 12)):
            n = rng.choice([0, 1, 2, 3, 5, 8, 13, 40])
            sid = rng.choice([None, None, 0, 1, 2])
            if sid is not None:
                storages.setdefault(sid, n + rng.choice([0, 4]))
            state[f"k{i}"] = (n, sid, storages[sid] if sid is not None else n)
        limit = rng.randint(1, 30)
        hub = split_state_dict_into_shards_factory(state, get_storage_size=lambda v: v[2],
                                                   get_storage_id=lambda v: v[1],
                                                   filename_pattern="model{suffix}.safetensors",
                                                   max_shard_size=limit)
        ours = split_shards([OutTensor(k, "U8", (n,), n, _writer(b""), sid, size)
                             for k, (n, sid, size) in state.items()], limit)
        assert [[t.name for t in s] for s in ours] == list(hub.filename_to_tensors.values()), (state, limit)
        tensors = [t for s in ours for t in s]
        assert total_size(tensors) == hub.metadata["total_size"], (state, limit)


def test_a_sharded_conversion_loads_through_its_index(tmp_path: Path) -> None:
    import numpy as np
    from safetensors import safe_open

    ts = {f"layer{i}.weight": tensor(str(i), [float(i)] * 8, (2, 4)) for i in range(5)}
    ckptlint.convert(torch_zip(tmp_path / "s.pt", OD(ts)), tmp_path / "model.safetensors", max_shard_size=70)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 5 * 32
    for name, file in index["weight_map"].items():
        with safe_open(str(tmp_path / file), framework="numpy") as f:
            np.testing.assert_array_equal(f.get_tensor(name), np.full((2, 4), float(name[5]), np.float32))


def test_every_dtype_is_ordered_as_safetensors_orders_it() -> None:
    """Random tensors of every dtype ckptlint writes (bf16, fp8, c64 included: numpy has none of them), laid out
    by safetensors' own serializer from raw buffers: the same header and data order, byte for byte."""
    import ctypes

    import safetensors

    from ckptlint.conversion.dtypes import SAFETENSORS_CODE
    from ckptlint.formats.dtypes import ITEMSIZE

    rng = random.Random(3)
    dtypes = sorted(SAFETENSORS_CODE)
    for _ in range(30):
        tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
        for i in range(rng.randint(1, 12)):
            name = rng.choice(["w", "b", "layer.0.weight", "é", "Z", "a.b", "x_1"]) + str(i)
            dtype = rng.choice(dtypes)
            shape = tuple(rng.randint(0, 3) for _ in range(rng.randint(0, 3)))
            n = ITEMSIZE[dtype]
            for d in shape:
                n *= d
            tensors[name] = (dtype, shape, bytes(rng.getrandbits(8) for _ in range(n)))
        buffers = {k: ctypes.create_string_buffer(data, max(len(data), 1)) for k, (_, _, data) in tensors.items()}
        specs = {k: safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=ctypes.addressof(buffers[k]),
                                           data_len=len(data)) for k, (dtype, shape, data) in tensors.items()}
        theirs = safetensors.serialize(specs, None)
        head, ordered = header_bytes([OutTensor(k, SAFETENSORS_CODE[dtype], shape, len(data), _writer(data))
                                      for k, (dtype, shape, data) in tensors.items()], {})
        assert head + b"".join(tensors[t.name][2] for t in ordered) == theirs, tensors
