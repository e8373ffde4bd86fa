"""Whole-process benchmark of ``ckptlint convert`` against the usual conversion script (issue #15).

On the llama-like bf16 state_dict (``benchmarks/llama_like.py``, 1.9 GB by default), as separate processes,
paired and interleaved (ckptlint, script; script, ckptlint; ...), medians of ``--repeat`` pairs:

* ckptlint: ``ckptlint convert FILE OUT.safetensors``
* the script: ``python -c "import torch, safetensors.torch as st; sd = torch.load(F, weights_only=True);
  st.save_file(sd, OUT)"``

Wall time around each process (after an ``os.sync()``, so no run pays for the previous one's writeback); peak
RSS from ``/usr/bin/time -v`` ("Maximum resident set size"), else from
``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper. Before timing, one conversion is checked tensor by tensor
against ``torch.load(F, mmap=True)`` (bit for bit), and a probe process confirms the conversion imports no
torch. Each output is deleted right after its run (at most the source and one output on disk at a time).

Targets: ckptlint >= 5x faster, with <= 1/10 of the script's peak RSS.

    python benchmarks/bench_convert.py [--workdir DIR] [--size-gb 1.9] [--repeat 5] [--quick] [--keep]
                                       [--file CKPT]

``--quick``: a 0.25 GB file and 2 pairs (a smoke run: the script's fixed cost, importing torch, dominates
at that size, so the targets are only judged on the full-size file).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench_compat
from bench_compat import GNU_TIME, PY, REPO, ckptlint_cmd, env  # the measuring helpers both benchmarks share
from bench_compat import measure_full as measure

_TORCH_PROBE = r"""
import sys
from ckptlint.cli import main
rc = main(sys.argv[1:])
sys.stderr.write("\nTORCH_IMPORTED=%s NUMPY_IMPORTED=%s RC=%d\n" % ("torch" in sys.modules, "numpy" in sys.modules, rc))
"""


def script_cmd(src: str, out: str) -> list[str]:
    return [PY, "-c", (f"import torch, safetensors.torch as st; sd = torch.load({src!r}, weights_only=True); "
                       f"st.save_file(sd, {out!r})")]


def generate(path: str, size_gb: float) -> int:
    """The llama-like bf16 state_dict of about ``size_gb`` (random normal weights); returns its layer count."""
    import torch

    sys.path.insert(0, REPO)
    from benchmarks.llama_like import LlamaLike, layers_for

    n_layers = layers_for(size_gb * 1e9)
    if os.path.exists(path):
        return n_layers
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in LlamaLike(n_layers=n_layers).state_dict().items()}
    torch.manual_seed(0)
    sd = {k: torch.empty(shape, dtype=dtype).normal_(0, 0.02) for k, (shape, dtype) in shapes.items()}
    torch.save(sd, path + ".part")
    os.replace(path + ".part", path)
    return n_layers


def verify(src: str, out: str) -> int:
    """Every tensor of ``out`` equals torch.load(src, mmap=True)'s bit for bit; returns the count (mmap both:
    memory stays bounded)."""
    import torch
    from safetensors import safe_open

    sd = torch.load(src, weights_only=True, mmap=True)
    with safe_open(out, framework="pt") as f:
        if set(f.keys()) != set(sd):
            raise RuntimeError(f"keys differ: {sorted(set(f.keys()) ^ set(sd))[:5]}")
        for k, want in sd.items():
            got = f.get_tensor(k)
            if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(
                    got.contiguous().view(-1).view(torch.uint8), want.contiguous().view(-1).view(torch.uint8)):
                raise RuntimeError(f"{k}: differs from torch.load")
    return len(sd)


def torch_probe(src: str, out: str) -> tuple[bool, bool, int]:
    p = subprocess.run([PY, "-c", _TORCH_PROBE, "convert", src, out], capture_output=True, text=True, env=env())
    m = re.search(r"TORCH_IMPORTED=(\w+) NUMPY_IMPORTED=(\w+) RC=(\d+)", p.stderr)
    if not m:
        raise RuntimeError(f"probe failed: {p.stderr[-800:]}")
    return m.group(1) == "True", m.group(2) == "True", int(m.group(3))


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workdir", help="where to write the checkpoint and outputs (default: a temp folder)")
    ap.add_argument("--size-gb", type=float, default=1.9, help="size of the llama-like checkpoint (default 1.9)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved pairs; medians are reported (default 5)")
    ap.add_argument("--quick", action="store_true", help="a 0.25 GB file and 2 pairs (smoke run)")
    ap.add_argument("--keep", action="store_true", help="keep the generated checkpoint (reused by a later run)")
    ap.add_argument("--python", metavar="PY", help="interpreter for the measured processes (default: this one)")
    ap.add_argument("--file", metavar="CKPT", help="measure this existing checkpoint instead of generating one "
                    "(e.g. bench_reader.py's WORKDIR/llama.pth, the same llama-like shapes; never deleted)")
    a = ap.parse_args()
    global PY
    if a.python:
        PY = bench_compat.PY = a.python  # ckptlint_cmd and the rusage fallback read bench_compat's
    if a.quick:
        a.size_gb, a.repeat = 0.25, 2

    workdir = a.workdir or tempfile.mkdtemp(prefix="ckptlint-bench-convert-")
    os.makedirs(workdir, exist_ok=True)
    src = a.file or os.path.join(workdir, f"llama_like_{a.size_gb:g}GB.pt")
    if a.file:
        a.keep = True
        a.size_gb = os.path.getsize(a.file) / 1e9
    need = a.size_gb * 1e9 * (1 if os.path.exists(src) else 2) * 1.1
    if shutil.disk_usage(workdir).free < need:
        sys.exit(f"{workdir}: {shutil.disk_usage(workdir).free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed")
    out_ck, out_script = os.path.join(workdir, "ckptlint.safetensors"), os.path.join(workdir, "script.safetensors")
    try:
        t = time.perf_counter()
        layers = "" if a.file else f", {generate(src, a.size_gb)} layers"
        size = os.path.getsize(src)
        print(f"source: {src}, {size / 1e9:.2f} GB{layers} ({time.perf_counter() - t:.0f} s)", flush=True)
        with open(src, "rb") as f:  # warm the page cache: both commands read a cached file
            while f.read(1 << 24):
                pass

        torch_imported, numpy_imported, rc = torch_probe(src, out_ck)
        if rc != 0:
            raise RuntimeError(f"ckptlint convert failed (exit {rc})")
        n = verify(src, out_ck)
        remove(out_ck)
        print(f"check: {n} tensors equal torch.load bit for bit; torch imported by convert: {torch_imported}, "
              f"numpy: {numpy_imported}", flush=True)

        ck = [*ckptlint_cmd(), "convert", src, out_ck]
        script = script_cmd(src, out_script)
        rows: dict[str, list[tuple[float, float]]] = {"ckptlint": [], "script": []}
        for i in range(a.repeat):
            order = [("ckptlint", ck, out_ck), ("script", script, out_script)]
            for name, cmd, out in order if i % 2 == 0 else order[::-1]:
                os.sync()  # the previous run's 1.9 GB of dirty pages are written back before, not during, this one
                wall, rss, rc, err = measure(cmd)
                remove(out)
                if rc != 0:
                    raise RuntimeError(f"{name} exit {rc}: {err}")
                rows[name].append((wall, rss))
                print(f"  pair {i + 1} {name:8} {wall:7.2f} s {rss:7.0f} MiB", flush=True)

        def med(name: str, j: int) -> float:
            return statistics.median(r[j] for r in rows[name])

        speedups = [s[0] / c[0] for c, s in zip(rows["ckptlint"], rows["script"], strict=True)]
        mem = [s[1] / c[1] for c, s in zip(rows["ckptlint"], rows["script"], strict=True)]
        torch_version = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                                       text=True).stdout.strip()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print()
        print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  cpus {os.cpu_count()}  "
              f"load {load:.1f}  python {platform.python_version()}  torch {torch_version}  "
              f"peak RSS via {'/usr/bin/time -v' if GNU_TIME else 'getrusage'}  {a.repeat} interleaved pairs")
        print("| file | ckptlint convert | torch.load + save_file | speedup | ckptlint peak RSS | script peak RSS "
              "| memory ratio |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(f"| {os.path.basename(src)} {size / 1e9:.2f} GB | {med('ckptlint', 0):.2f} s | {med('script', 0):.2f} s "
              f"| {statistics.median(speedups):.1f}x | {med('ckptlint', 1):.0f} MiB | {med('script', 1):.0f} MiB "
              f"| {statistics.median(mem):.1f}x |")
        print("(speedup and memory ratio: medians of the per-pair ratios)")
        if not a.quick:
            s, m = statistics.median(speedups), statistics.median(mem)
            print(f"target >= 5x faster: {s:.1f}x {'MET' if s >= 5 else 'MISSED'}; "
                  f"target <= 1/10 peak memory: {m:.1f}x {'MET' if m >= 10 else 'MISSED'}")
    finally:
        remove(out_ck)
        remove(out_script)
        if not a.keep:
            remove(src)
            if not a.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
