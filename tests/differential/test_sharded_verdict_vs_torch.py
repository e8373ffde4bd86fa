"""For a shard index, the weights_only verdict is about its shards: torch.load on each one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ckptlint.checker import check_file


def _index(d: Path, name: str, shards: dict[str, dict[str, torch.Tensor]]) -> Path:
    weight_map = {k: shard for shard, sd in shards.items() for k in sd}
    p = d / name
    p.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return p


def _torch_loads_every_shard(d: Path, shards: list[str]) -> bool:
    try:
        for s in shards:
            torch.load(d / s, weights_only=True)
    except Exception:  # noqa: BLE001 - torch's verdict, whatever it raises
        return False
    return True


@pytest.mark.parametrize("case", ["clean-bin", "namespace-bin", "safetensors", "protocol4-bin"])
def test_sharded_verdict_matches_torch_per_shard(tmp_path: Path, case: str) -> None:
    a = {"a.weight": torch.ones(2, 2)}
    b = {"b.weight": torch.zeros(3)}
    if case == "safetensors":
        save_file(a, tmp_path / "model-00001-of-00002.safetensors")
        save_file(b, tmp_path / "model-00002-of-00002.safetensors")
        names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        index = _index(tmp_path, "model.safetensors.index.json", dict(zip(names, (a, b), strict=True)))
    else:
        names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
        torch.save(a, tmp_path / names[0])
        second = dict(b)
        kwargs = {"pickle_protocol": 4} if case == "protocol4-bin" else {}
        if case == "namespace-bin":
            torch.save({**second, "args": argparse.Namespace(lr=1)}, tmp_path / names[1])
        else:
            torch.save(second, tmp_path / names[1], **kwargs)
        index = _index(tmp_path, "pytorch_model.bin.index.json", dict(zip(names, (a, b), strict=True)))
    verdict = check_file(index).verdict
    assert verdict is not None
    assert verdict.loads == _torch_loads_every_shard(tmp_path, names)
    if not verdict.loads:
        assert verdict.blocking[0].stream.startswith(names[1])
