"""``ckptlint convert`` on mutated checkpoints, against torch (issue #15): bytes changed at random in a zip
file's pickle and anywhere in a legacy file (seeded, so the same inputs each run). For each mutant:

* convert ends with exit 0 (a file) or exit 2 (one line on stderr, no file), never a traceback;
* when ``torch.load(weights_only=True)`` reads the mutant as a dict of tensors, convert writes exactly those
  tensors, bit for bit; or refuses naming a storage the file does not hold (torch then hands out
  uninitialised memory for it: there are no bytes to copy); or refuses because torch's two readings disagree,
  which holds only where ``torch.load(weights_only=False)`` (CPython's unpickler, driven inertly) fails;
* the corpus exercises both outcomes (torch reads it / torch refuses it), so the properties are not vacuous.
"""

from __future__ import annotations

import io
import random
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from _convert_oracle import Converted, bitwise_equal, convert_torchfree
from safetensors.torch import load_file

from conftest import TESTS

sys.path.insert(0, str(TESTS))
from fuzz import inert

N = 120
"""Mutants per format."""


def _original(fmt: str) -> bytes:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"a": base, "b": base[1:, ::2], "c": base.t(), "d": torch.arange(5, dtype=torch.int16),
          "e": torch.ones(3, dtype=torch.bfloat16)}
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=(fmt == "zip"))
    return buf.getvalue()


def _mutable_range(data: bytes, fmt: str) -> tuple[int, int]:
    """A zip's data.pkl bytes (torch does not check CRCs); all of a legacy file."""
    if fmt == "legacy":
        return 0, len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (info,) = [i for i in z.infolist() if i.filename.endswith("/data.pkl")]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return start, start + info.compress_size


def _torch_reads(path: Path) -> dict[str, torch.Tensor] | None:
    """torch.load(weights_only=True)'s dict of tensors, or None when it refuses or gives something else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - any refusal counts: the oracle said no
        return None
    if isinstance(got, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in got.items()):
        return dict(got)
    return None


def _full_load_reads(path: Path) -> bool:
    """Whether ``torch.load(weights_only=False)`` gets through the file: CPython's unpickler driven by torch, with
    the inert pickle module (tests/fuzz/inert.py: globals are stand-ins, nothing is imported or run)."""
    inert.reset(real_storage_classes=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=False, pickle_module=inert)
    except Exception:  # noqa: BLE001 - any exception: CPython's reading stops
        return False
    finally:
        inert.reset()
    return True


@pytest.fixture(scope="module")
def mutants(module_tmp: Path) -> list[tuple[Path, dict[str, torch.Tensor] | None, Converted]]:
    tmp = module_tmp
    rng = random.Random(15)
    made: list[tuple[Path, dict[str, torch.Tensor] | None]] = []
    for fmt in ("zip", "legacy"):
        data = _original(fmt)
        lo, hi = _mutable_range(data, fmt)
        for i in range(N):
            mutant = bytearray(data)
            for _ in range(rng.choice((1, 1, 2, 3))):
                mutant[rng.randrange(lo, hi)] = rng.randrange(256)
            path = tmp / f"{fmt}{i}.pt"
            path.write_bytes(bytes(mutant))
            made.append((path, _torch_reads(path)))
    results = convert_torchfree([["convert", p, p.with_suffix(".safetensors")] for p, _ in made], tmp / "run")
    return [(p, t, r) for (p, t), r in zip(made, results, strict=True)]


def test_the_corpus_has_both_outcomes(mutants: list[tuple[Path, Any, Converted]]) -> None:
    for fmt in ("zip", "legacy"):
        reads = [t is not None for p, t, _ in mutants if p.name.startswith(fmt)]
        assert 5 <= sum(reads) <= len(reads) - 5, (fmt, sum(reads))


def test_exit_0_with_a_file_or_exit_2_with_one_line(mutants: list[tuple[Path, Any, Converted]]) -> None:
    for path, _, r in mutants:
        assert "Traceback" not in r.text and "internal error" not in r.text, (path.name, r.text[-2000:])
        assert r.code in (0, 2), (path.name, r.code, r.text[-2000:])
        if r.code == 2:
            assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("ckptlint: "), (path.name, r.stderr)
        assert path.with_suffix(".safetensors").exists() == (r.code == 0), path.name


def test_what_torch_reads_convert_writes_bit_for_bit(mutants: list[tuple[Path, Any, Converted]]) -> None:
    compared = 0
    for path, expected, r in mutants:
        if expected is None:
            continue
        if r.code == 2 and "readings disagree" in r.stderr:  # refused: weights_only=False must then fail
            assert not _full_load_reads(path), (path.name, r.stderr)
            continue
        if r.code == 2:
            assert "no byte location" in r.stderr, (path.name, r.stderr)  # torch's tensor is uninitialised memory
            continue
        got = load_file(str(path.with_suffix(".safetensors")))
        assert got.keys() == expected.keys(), path.name
        assert all(bitwise_equal(got[k], v) for k, v in expected.items()), path.name
        compared += 1
    assert compared >= 10
