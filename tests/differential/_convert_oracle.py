"""torch as the oracle for ``ckptlint convert`` (issue #15): convert in a process that cannot import torch,
then compare every output tensor with what ``torch.load`` (trusted, here in the test) gives, bit for bit.

The converting process is a fresh interpreter whose ``sys.meta_path`` starts with a finder that raises
ImportError for torch and its family (numpy included: ckptlint does not depend on it), so a conversion
that needed torch fails instead of quietly using it. It runs many conversions (``ckptlint.cli.main``)
in one process, one interpreter start for a whole test module, and reports which blocked modules were
asked for and which ended up in ``sys.modules`` (none may), and how far its peak RSS (``VmHWM``) grew
while converting. A job can also call the Python API, ``ckptlint.convert(...)``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

BLOCKED = ("torch", "torchvision", "numpy", "safetensors", "transformers", "timm", "peft", "lightning",
           "pytorch_lightning", "accelerate")
"""Top-level packages the converting process cannot import."""

RUNNER = r"""
import contextlib, importlib.abc, io, json, sys, traceback
BLOCKED = set(json.loads(sys.argv[3]))
TRIED = []

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            TRIED.append(name)
            raise ImportError("blocked in the converting process: " + name)
        return None

sys.meta_path.insert(0, Blocked())
from ckptlint.cli import main
import ckptlint.conversion.api  # the conversion's own modules, so the baseline below counts them

def hwm_kb():  # this process's peak RSS (VmHWM: per address space; ru_maxrss would include the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

RSS_BEFORE = hwm_kb()

results = []
with open(sys.argv[1]) as f:
    jobs = json.load(f)
for argv in jobs:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if argv[0] == "--api":  # ckptlint.convert(SRC, DEST, **KWARGS_JSON): the Python API
                import dataclasses, ckptlint
                result = ckptlint.convert(argv[1], argv[2], **json.loads(argv[3]))
                print(json.dumps(dataclasses.asdict(result), default=list))
                code = 0
            else:
                code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
        except BaseException:
            code = -1
            err.write(traceback.format_exc())
    results.append({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED and sys.modules[m] is not None)
with open(sys.argv[2], "w") as f:
    json.dump({"results": results, "tried": TRIED, "loaded": loaded, "rss_before_kb": RSS_BEFORE,
               "rss_peak_kb": hwm_kb()}, f)
"""


@dataclass(frozen=True)
class Converted:
    """One ``ckptlint`` invocation in the torch-less process."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def convert_torchfree(jobs: Sequence[Sequence[str | os.PathLike[str]]], workdir: Path, *,
                      env: Mapping[str, str] | None = None,
                      pythonpath: Sequence[Path] = ()) -> list[Converted]:
    """Run ``ckptlint ARGV`` for each job, in one fresh process where torch & co. cannot be imported.

    A job ``["--api", SRC, DEST, KWARGS_JSON]`` calls ``ckptlint.convert(SRC, DEST, **KWARGS)`` instead and
    prints its result as JSON (an exception: code -1, the traceback on stderr).

    Asserts that no blocked module was imported (or even asked for) there.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    jobs_file, out_file = workdir / "jobs.json", workdir / "results.json"
    jobs_file.write_text(json.dumps([[os.fspath(a) for a in job] for job in jobs]))
    full = dict(os.environ)
    full.update(env or {})
    full["CKPTLINT_NO_CACHE"] = "1"
    if pythonpath:
        full["PYTHONPATH"] = os.pathsep.join([*map(os.fspath, pythonpath), full.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, "-c", RUNNER, str(jobs_file), str(out_file), json.dumps(BLOCKED)],
                       capture_output=True, text=True, cwd=workdir, env=full, timeout=600, check=False)
    assert p.returncode == 0 and out_file.exists(), (p.returncode, p.stdout, p.stderr[-3000:])
    data = json.loads(out_file.read_text())
    assert data["loaded"] == [], f"the converting process imported {data['loaded']}"
    assert data["tried"] == [], f"the converting process tried to import {data['tried']}"
    LAST_RSS_GROWTH[0] = (data["rss_peak_kb"] - data["rss_before_kb"]) * 1024
    return [Converted(r["argv"], r["code"], r["stdout"], r["stderr"]) for r in data["results"]]


LAST_RSS_GROWTH = [0]
"""Bytes the last converting process's peak RSS (``VmHWM``) grew by while it converted."""


def trusted_load(path: Path | str) -> Any:
    """torch.load of a file this test wrote a moment ago (full unpickling: it is the test's own file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=False, map_location="cpu")


def raw(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, as torch lays them out contiguously (native byte order)."""
    if t.numel() == 0:
        return torch.empty(0, dtype=torch.uint8)
    return dense(t).reshape(-1).view(torch.uint8)


def dense(t: torch.Tensor) -> torch.Tensor:
    """A copy with its own storage and standard strides (``contiguous()`` keeps a (1,) view's 0 stride)."""
    return torch.empty(tuple(t.shape), dtype=t.dtype).copy_(t.detach())


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape) and torch.equal(raw(a), raw(b))


def assert_output_equals(out: Path, expected: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Every tensor of the safetensors file ``out`` equals, bit for bit, ``expected`` (same keys, dtype, shape).

    Read twice, with ``safe_open`` and ``load_file``; the header (dtypes, shapes, offsets: the data order) is the
    one ``safetensors.torch.save`` writes for the same tensors and metadata. Returns the file's ``__metadata__``.
    """
    assert out.exists(), f"{out} was not written"
    with safe_open(str(out), framework="pt") as f:
        keys = set(f.keys())
        metadata = f.metadata() or {}
        missing, extra = set(expected) - keys, keys - set(expected)
        assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
        for k, want in expected.items():
            got = f.get_tensor(k)
            assert got.dtype == want.dtype, (k, got.dtype, want.dtype)
            assert tuple(got.shape) == tuple(want.shape), (k, tuple(got.shape), tuple(want.shape))
            assert torch.equal(raw(got), raw(want)), f"{k}: bytes differ"
    again = load_file(str(out))
    assert all(bitwise_equal(again[k], v) for k, v in expected.items())
    assert header(out.read_bytes()) == header(save({k: dense(v) for k, v in expected.items()},
                                                   metadata=metadata or None)), "the header safetensors writes"
    return dict(metadata)


def header(data: bytes) -> dict[str, Any]:
    """A safetensors file's JSON header (length-prefixed), parsed: dtypes, shapes, data offsets, metadata."""
    (n,) = struct.unpack("<Q", data[:8])
    parsed: dict[str, Any] = json.loads(data[8:8 + n])
    return parsed


def state_dict_of(obj: Any) -> dict[str, torch.Tensor]:
    """What torch gives as the state_dict: ``model.state_dict()`` for a module, the mapping's tensors otherwise."""
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict())
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
