"""Calls with argument counts torch's allowlisted functions refuse (fuzz seed 1 index 68682).

The pickle VM's table of those functions' arity (formats/knowncalls.py ``TORCH_FUNCTIONS``) must be the
installed torch's own (``inspect.signature`` over ``_get_allowed_globals``), and a data.pkl that calls
``_rebuild_tensor_v2`` with 4 arguments must get torch.load(weights_only=True)'s answer: TypeError, loads: false.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch._weights_only_unpickler import _get_allowed_globals

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ckptlint.checker import check_file
from ckptlint.formats.knowncalls import TORCH_FUNCTIONS

from zipcraft import Entry, build, entries_of, torch_members

FUNCTIONS = {k: v for k, v in _get_allowed_globals().items() if inspect.isfunction(v) or inspect.isbuiltin(v)}


def _positional_range(fn: Any) -> tuple[int, int]:
    params = inspect.signature(fn).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert not any(p.kind == p.VAR_POSITIONAL for p in params)
    assert not any(p.kind == p.KEYWORD_ONLY and p.default is p.empty for p in params)
    return sum(1 for p in positional if p.default is p.empty), len(positional)


def test_table_lists_every_allowlisted_function() -> None:
    assert len(FUNCTIONS) >= 10
    assert set(FUNCTIONS) == set(TORCH_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_arity_is_the_signatures(name: str) -> None:
    assert TORCH_FUNCTIONS[name] == _positional_range(FUNCTIONS[name])


def _data_pkl(extra_args: bytes) -> bytes:
    """``{"w": _rebuild_tensor_v2(storage, 0, (4,), (1,) <extra_args>)}`` in protocol 2, weights_only-clean."""
    return (b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage"
            b"q\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x04tq\x07Q"
            b"K\x00K\x04\x85q\x08K\x01\x85q\t" + extra_args + b"tq\nRq\x0bs.")


@pytest.mark.parametrize(("args", "loads"), [
    (b"", False),  # 4 arguments: missing requires_grad and backward_hooks
    (b"\x89", False),  # 5
    (b"\x89ccollections\nOrderedDict\nq\x0c)Rq\r", True),  # 6: what torch.save writes
    (b"\x89ccollections\nOrderedDict\nq\x0c)Rq\rNN", False),  # 8: one too many
], ids=["4", "5", "6", "8"])
def test_rebuild_arity_verdict_is_torchs(tmp_path: Path, args: bytes, loads: bool) -> None:
    members = [e for e in entries_of(torch_members({"w": torch.arange(4.0)})) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "arity.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", _data_pkl(args)), *members]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(p, weights_only=True)
        torch_loads = True
    except Exception:  # noqa: BLE001 - the refusal is the answer
        torch_loads = False
    assert torch_loads is loads
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is loads, fr.verdict.blocking
