"""Whole-process time of the pre-commit safety hook against torch.load(weights_only=True).

Saves the state_dicts of ten torchvision models (a typical commit of checkpoints), then
times, as separate processes, each run N times (median reported):

- hook:  ``ckptlint check --skip-site-pth FILES``   (what the ``ckptlint`` hook runs; no torch),
         from a fresh virtualenv holding only ckptlint and its dependencies, as pre-commit
         builds it (``--ckptlint PATH`` to time another executable, e.g. the dev venv's)
- torch: ``python -c "import torch; [torch.load(f, weights_only=True) for f in FILES]"``

Usage: python benchmarks/bench_hook.py [--runs 5] [--dir DIR] [--ckptlint PATH]
Target: the hook is at least 10x faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ["resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
          "squeezenet1_1", "shufflenet_v2_x1_0", "densenet121", "regnet_y_400mf", "mnasnet1_0"]


def make_checkpoints(d: Path) -> list[str]:
    import torch
    import torchvision

    files = []
    for name in MODELS:
        path = d / f"{name}.pt"
        if not path.exists():
            torch.save(getattr(torchvision.models, name)().state_dict(), path)
        files.append(str(path))
    return files


def hook_env(d: Path) -> str:
    """A virtualenv like pre-commit's ``language: python`` one: ``pip install`` of this repository."""
    repo = Path(__file__).resolve().parents[1]
    env = d / "hook-venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(repo)], check=True)
    return str(env / "bin" / "ckptlint")


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="where to keep the checkpoints (default: a temporary folder)")
    ap.add_argument("--ckptlint", help="the ckptlint executable to time (default: a fresh hook-like venv)")
    args = ap.parse_args()
    d = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ckptlint-bench-hook-"))
    d.mkdir(parents=True, exist_ok=True)
    try:
        files = make_checkpoints(d)
        total = sum(os.path.getsize(f) for f in files)
        ckptlint = args.ckptlint or hook_env(d)
        hook = [ckptlint, "check", "--skip-site-pth", *files]
        load = [sys.executable, "-c",
                "import sys, torch\n[torch.load(f, weights_only=True) for f in sys.argv[1:]]", *files]
        timed(hook, 1), timed(load, 1)  # warm the page cache and bytecode caches
        t_hook = timed(hook, args.runs)
        t_load = timed(load, args.runs)
    finally:
        if not args.dir:
            shutil.rmtree(d, ignore_errors=True)
        else:
            shutil.rmtree(d / "hook-venv", ignore_errors=True)
    m_hook, m_load = statistics.median(t_hook), statistics.median(t_load)
    print(f"{len(files)} checkpoints, {total / 2**20:.0f} MiB, {args.runs} runs each, median wall time")
    print(f"  ckptlint: {ckptlint}")
    print(f"  ckptlint check --skip-site-pth:   {m_hook:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in t_hook)})")
    print(f"  torch.load(weights_only=True):    {m_load:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in t_load)})")
    ratio = m_load / m_hook
    print(f"  ratio: {ratio:.1f}x faster (target >= 10x): {'OK' if ratio >= 10 else 'BELOW TARGET'}")
    return 0 if ratio >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
