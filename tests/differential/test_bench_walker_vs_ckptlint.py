"""The benchmarks' baseline is honest: benchmarks/walker.py finds what ckptlint and torch find.

bench_reader.py judges ckptlint's speed against the minimal walker; a walker that skipped work
(missed tensors, misread shapes) would flatter ckptlint. On torch-saved files, the walker's tensors
(key path, dtype, shape, stride, offset, storage key, parameter or not) equal ckptlint's inventory
and torch.load's own tensors, and its globals are the globals ckptlint reports.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

import ckptlint

WALKER = Path(__file__).resolve().parents[2] / "benchmarks" / "walker.py"


@pytest.fixture(scope="module")
def walker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_walker", WALKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_walker"] = module
    spec.loader.exec_module(module)
    return module


def _mixed() -> dict[str, Any]:
    base = torch.arange(12, dtype=torch.float32)
    lin = nn.Linear(3, 2)
    return {
        "bf16": torch.ones(3, 2, dtype=torch.bfloat16),
        "param": nn.Parameter(torch.ones(2, dtype=torch.float64)),
        "view": base[2:8].view(2, 3),
        "transposed": base.view(3, 4).t(),
        "tied_a": base, "tied_b": base,
        "ints": torch.tensor([1, 2, 3], dtype=torch.int64), "mask": torch.tensor([True, False]),
        "half": torch.zeros(2, 2, dtype=torch.float16), "u8": torch.zeros(5, dtype=torch.uint8),
        "scalar": torch.tensor(3.5),
        "nested": {"layers": [lin.state_dict(), {"w": torch.ones(1)}], "step": 7, "lr": 1e-3},
    }


def _optimizer() -> dict[str, Any]:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}


CASES: dict[str, Callable[[], Any]] = {
    "linear_state_dict": lambda: nn.Linear(4, 4).state_dict(),
    "resnet_like": lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2)).state_dict(),
    "mixed": _mixed,
    "optimizer": _optimizer,
    "ordered_plain": lambda: OrderedDict((f"k{i}", torch.full((i + 1,), float(i))) for i in range(40)),
}


def _ckptlint_tensors(path: Path) -> list[tuple[Any, ...]]:
    inv = ckptlint.inspect(str(path))
    return [(list(t.path), t.dtype, list(t.shape), list(t.stride or ()), t.storage_offset, t.storage_key,
             t.is_parameter) for t in inv.tensors]


def _walker_tensors(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(t["path"], t["dtype"], t["shape"], t["stride"], t["storage_offset"], t["storage_key"],
             t["is_parameter"]) for t in result["tensors"]]


def _torch_tensors(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[list[Any], str, list[int]]]:
    if isinstance(obj, torch.Tensor):
        return [(list(path), str(obj.dtype).removeprefix("torch."), list(obj.shape))]
    if isinstance(obj, dict):
        return [t for k, v in obj.items() for t in _torch_tensors(v, (*path, k))]
    if isinstance(obj, (list, tuple)):
        return [t for i, v in enumerate(obj) for t in _torch_tensors(v, (*path, i))]
    return []


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_walker_finds_what_ckptlint_and_torch_find(case: str, tmp_path: Path, walker: ModuleType) -> None:
    path = tmp_path / f"{case}.pt"
    torch.save(CASES[case](), path)
    result = walker.walk(str(path))
    mine = _walker_tensors(result)
    assert mine, case
    assert mine == _ckptlint_tensors(path)
    loaded = torch.load(path, weights_only=True)
    assert [(p, d, s) for p, d, s, *_ in mine] == _torch_tensors(loaded)
    assert all(t["in_zip"] for t in result["tensors"])
    inv = ckptlint.inspect(str(path))
    assert {(g["module"], g["name"]) for g in result["globals"]} == {(g.module, g.name) for g in inv.globals}
    assert result["zip_entries"] == len(inv.facts.zip_entries)


def test_a_zip64_directory_is_read_in_full(tmp_path: Path, walker: ModuleType) -> None:
    """Past 65,535 records torch writes zip64 end records: the walker reads all of them, as ckptlint does."""
    path = tmp_path / "many.pt"
    torch.save(nn.Sequential(*[nn.Linear(1, 1) for _ in range(33_000)]).state_dict(), path)
    result = walker.walk(str(path))
    assert len(result["tensors"]) == 66_000 and result["zip_entries"] > 65_535
    assert _walker_tensors(result) == _ckptlint_tensors(path)
    assert all(t["in_zip"] for t in result["tensors"])


def test_the_walker_refuses_what_it_does_not_read(tmp_path: Path, walker: ModuleType) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(walker.WalkError):
        walker.walk(str(legacy))
    assert walker.main([str(legacy)]) == 2
