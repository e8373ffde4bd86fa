"""``ckptlint convert --key PATH`` on random checkpoint structures, against torch (issue #15).

A hypothesis generator builds training-style checkpoints: a state_dict (tensors that are views of shared
storages, and non-tensor entries) nested 0-3 levels deep in dicts and lists, next to siblings that hold the
same tensors first (so the state_dict's tensors are pickle memo references to objects built elsewhere),
optimizer-like dicts with integer keys, ``argparse.Namespace`` objects and plain values. Each is saved as a
zip and a legacy file and converted with ``--key`` naming the state_dict, in a process where torch cannot be
imported: the output holds exactly the state_dict's tensors, bit for bit as ``torch.load`` gives them, and
every non-tensor entry of the state_dict is listed as left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from _convert_oracle import assert_output_equals, convert_torchfree, trusted_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DTYPES = (torch.float32, torch.bfloat16, torch.int64, torch.float16, torch.uint8, torch.bool)
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
KEY_CHARS = st.characters(codec="utf-8", exclude_categories=SURROGATES)
PATH_KEYS = ("model", "state_dict", "net", "ema", "student", "weights")


def _storage(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(1, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    if dtype == torch.bool:
        return torch.randint(0, 2, (n,), generator=g).bool()
    size = torch.empty((), dtype=dtype).element_size()
    return torch.randint(0, 256, (n * size,), generator=g, dtype=torch.uint8).view(dtype)


def _tensor(draw: st.DrawFn, bases: list[torch.Tensor]) -> torch.Tensor:
    base = draw(st.sampled_from(bases))
    n = base.numel()
    start = draw(st.integers(0, n - 1))
    step = draw(st.integers(1, 3))
    view = base[start::step]
    if view.numel() >= 4 and draw(st.booleans()):
        rows = draw(st.sampled_from([d for d in (2, 3, 4) if view.numel() % d == 0] or [1]))
        view = view[: view.numel() // rows * rows].reshape(rows, -1)
        if draw(st.booleans()):
            view = view.t()
    return view


def _plain(draw: st.DrawFn) -> Any:
    return draw(st.one_of(st.integers(-5, 10**12), st.text(max_size=5), st.none(), st.floats(allow_nan=False),
                          st.builds(argparse.Namespace, lr=st.floats(0, 1), name=st.text(max_size=3)),
                          st.lists(st.integers(0, 9), max_size=3)))


@st.composite
def checkpoints(draw: st.DrawFn) -> tuple[Any, list[str | int], dict[str, torch.Tensor], list[str]]:
    """(checkpoint object, --key path, the state_dict's tensors, its non-tensor keys)."""
    bases = [_storage(draw) for _ in range(draw(st.integers(1, 3)))]
    keys = draw(st.lists(st.text(KEY_CHARS, min_size=1, max_size=12), min_size=1, max_size=7, unique=True))
    sd: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    plain: list[str] = []
    for k in keys:
        if draw(st.integers(0, 4)) == 0:
            sd[k] = _plain(draw)
            plain.append(k)
        else:
            sd[k] = tensors[k] = _tensor(draw, bases)
    if not tensors:
        sd[keys[0]] = tensors[keys[0]] = bases[0]
        plain.remove(keys[0])
    obj: Any = sd
    path: list[str | int] = []
    for _ in range(draw(st.integers(0, 3))):
        # a sibling first, holding some of the same tensors: the state_dict's pickle then refers back to them
        sibling = {"exp_avg": draw(st.sampled_from(list(tensors.values()))), "step": draw(st.integers(0, 99))}
        if draw(st.booleans()):
            items = [sibling, _plain(draw)]
            at = draw(st.integers(0, len(items)))
            items.insert(at, obj)
            obj, path = (items if draw(st.booleans()) else tuple(items)), [at, *path]
        else:
            name = draw(st.sampled_from(PATH_KEYS))
            outer: dict[Any, Any] = {"optimizer": {"state": {0: sibling}, "param_groups": [{"lr": 0.1,
                                                                                            "params": [0]}]},
                                     "args": argparse.Namespace(depth=2), "epoch": draw(st.integers(0, 9))}
            outer[name] = obj
            obj, path = outer, [name, *path]
    return obj, path, tensors, plain


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=checkpoints())
def test_key_path_converts_exactly_the_state_dict(case: tuple[Any, list[str | int], dict[str, torch.Tensor],
                                                              list[str]],
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    obj, path, tensors, plain = case
    tmp = tmp_path_factory.mktemp("structures")
    key = ["--key", "/".join(map(str, path))] if path else []
    jobs: list[list[str | Path]] = []
    for fmt in ("zip", "legacy"):
        torch.save(obj, tmp / f"{fmt}.pt", _use_new_zipfile_serialization=(fmt == "zip"))
        jobs.append(["convert", tmp / f"{fmt}.pt", tmp / f"{fmt}.safetensors", *key, "--format", "json"])
    for fmt, r in zip(("zip", "legacy"), convert_torchfree(jobs, tmp / "run"), strict=True):
        assert r.code == 0, (fmt, path, r.text[-3000:])
        loaded = trusted_load(tmp / f"{fmt}.pt")
        for p in path:
            loaded = loaded[p]
        expected = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        assert expected.keys() == tensors.keys()
        assert_output_equals(tmp / f"{fmt}.safetensors", expected)
        result = json.loads(r.stdout)  # --format json: the ConvertResult says what was written
        assert sorted(result["tensors"]) == sorted(expected)
        assert result["nbytes"] == sum(v.numel() * v.element_size() for v in expected.values())
        left_out = {k for k, _ in result["left_out"]}
        assert set(plain) <= left_out, (plain, result["left_out"])
