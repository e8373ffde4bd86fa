"""Whole-process benchmark of ``ckptlint check --model/--snapshot`` (issue #4 speed targets).

Generates checkpoints into a temporary folder (or --workdir), then runs each
command as a separate process and measures wall time and peak RSS:

* ``ckptlint check FILE --model SPEC`` against the usual loading script
  (build the model, ``torch.load(FILE, map_location="cpu", weights_only=True)``,
  ``model.load_state_dict(sd)``), on a torchvision resnet50 state_dict and on a
  ~2 GB llama-style bf16 state_dict (model class: ``benchmarks.llama_like:LlamaLike``);
* ``ckptlint check FILE --snapshot SNAP`` (snapshot from ``ckptlint snapshot``):
  its wall time and whether torch was imported.

Targets: on the 2 GB file ckptlint is >= 5x faster and uses >= 10x less peak
memory than the script; a snapshot check imports no torch and takes < 0.5 s.

    python benchmarks/bench_compat.py [--workdir DIR] [--size-gb 2] [--repeat N] [--keep]

Peak RSS comes from ``/usr/bin/time -v`` when present, else from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a fresh wrapper process
per measurement. Generated files are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

_RUSAGE_WRAPPER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
wall = time.perf_counter() - t
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "wall": wall, "rss_kb": kb}))
"""

_TORCH_PROBE = r"""
import sys
from ckptlint.cli import main
rc = main(sys.argv[1:])
sys.stderr.write("\nTORCH_IMPORTED=%s RC=%d\n" % ("torch" in sys.modules, rc))
"""


EXTRA_ENV: dict[str, str] = {}
"""Set per measurement: the cold runs disable ckptlint's target cache, the warm ones point it at a folder."""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("CKPTLINT_NO_CACHE", None)
    e.update(EXTRA_ENV)
    return e


def ckptlint_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(PY), "ckptlint")
    return [exe] if os.access(exe, os.X_OK) else [PY, "-m", "ckptlint"]


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one fresh process."""
    wall, rss, rc, _ = measure_full(cmd)
    return wall, rss, rc


def measure_full(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit code, stderr tail) of one fresh process (bench_convert uses it too)."""
    if GNU_TIME:
        t = time.perf_counter()
        p = subprocess.run([GNU_TIME, "-v", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=env())
        wall = time.perf_counter() - t
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        if not m:
            raise RuntimeError(f"no RSS from /usr/bin/time for {cmd}: {p.stderr[-500:]}")
        return wall, int(m.group(1)) / 1024, p.returncode, p.stderr[-800:]
    p = subprocess.run([PY, "-c", _RUSAGE_WRAPPER, *cmd], capture_output=True, text=True, env=env())
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return d["wall"], d["rss_kb"] / 1024, d["rc"], p.stderr[-800:]


def repeat(cmd: list[str], n: int, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    walls, rss = [], []
    for _ in range(n):
        w, r, rc = measure(cmd)
        if rc not in ok:
            raise RuntimeError(f"exit code {rc}: {' '.join(cmd)}")
        walls.append(w)
        rss.append(r)
    return statistics.median(walls), statistics.median(rss)


def generate(workdir: str, size_gb: float) -> dict[str, str]:
    import torch
    import torchvision

    sys.path.insert(0, REPO)
    from benchmarks.llama_like import LlamaLike, layers_for

    out: dict[str, str] = {}
    torch.manual_seed(0)
    path = os.path.join(workdir, "resnet50.pth")
    torch.save(torchvision.models.resnet50().state_dict(), path)
    out["resnet50"] = path

    n_layers = layers_for(size_gb * 1e9)
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in LlamaLike(n_layers=n_layers).state_dict().items()}
    sd = {}
    for k, (shape, dtype) in shapes.items():
        sd[k] = torch.empty(shape, dtype=dtype).normal_(0, 0.02)
    path = os.path.join(workdir, "llama_like.pt")
    torch.save(sd, path)
    del sd
    out["llama"] = path
    out["llama_kwargs"] = json.dumps({"n_layers": n_layers})
    return out


def baseline_cmd(build: str, path: str, variant: str = "usual") -> list[str]:
    if variant == "usual":
        code = (f"import torch; {build}; sd = torch.load({path!r}, map_location='cpu', weights_only=True); "
                "m.load_state_dict(sd)")
    else:  # a careful user: meta build, mmap'd load, assign
        code = (f"import torch\nwith torch.device('meta'):\n    {build}\n"
                f"sd = torch.load({path!r}, map_location='cpu', weights_only=True, mmap=True)\n"
                "m.load_state_dict(sd, assign=True)")
    return [PY, "-c", code]


def torch_probe(args: list[str]) -> tuple[bool, int]:
    p = subprocess.run([PY, "-c", _TORCH_PROBE, *args], capture_output=True, text=True, env=env())
    m = re.search(r"TORCH_IMPORTED=(\w+) RC=(\d+)", p.stderr)
    if not m:
        raise RuntimeError(f"probe failed: {p.stderr[-800:]}")
    return m.group(1) == "True", int(m.group(2))


def compat_summary(args: list[str]) -> dict:
    p = subprocess.run([*ckptlint_cmd(), *args, "--format", "json"], capture_output=True, text=True, env=env())
    c = json.loads(p.stdout)["files"][0]["compat"]
    return {"rc": p.returncode, "strict_ok": c["strict_ok"], "exact": c["exact"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where to write the generated checkpoints (default: a temp folder)")
    ap.add_argument("--size-gb", type=float, default=2.0, help="size of the llama-style checkpoint (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--python", metavar="PY",
                    help="interpreter for the measured processes, ckptlint's and the usual script's alike "
                         "(e.g. a venv with a CPU build of torch); default: this one")
    ap.add_argument("--cases", default="resnet50,llama",
                    help="comma-separated cases to measure (resnet50 needs torchvision there)")
    ap.add_argument("--careful-baseline", action="store_true",
                    help="also time a meta-device + mmap + assign=True loading script (informational)")
    a = ap.parse_args()
    global PY
    if a.python:
        PY = a.python

    import torch

    workdir = a.workdir or tempfile.mkdtemp(prefix="ckptlint-bench-")
    os.makedirs(workdir, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < a.size_gb * 1e9 * 1.3:
        sys.exit(f"{workdir}: only {free / 1e9:.1f} GB free; pass --workdir somewhere with more space")
    made: list[str] = []
    try:
        t = time.perf_counter()
        files = generate(workdir, a.size_gb)
        made += [files["resnet50"], files["llama"]]
        print(f"generated in {time.perf_counter() - t:.0f} s: resnet50 {os.path.getsize(files['resnet50']) / 1e6:.0f} MB, "
              f"llama-like {os.path.getsize(files['llama']) / 1e9:.2f} GB ({files['llama_kwargs']})", flush=True)

        cases = [
            ("resnet50", files["resnet50"], ["--model", "torchvision:resnet50"],
             "import torchvision; m = torchvision.models.resnet50()", "torchvision:resnet50", []),
            (f"llama-like {os.path.getsize(files['llama']) / 1e9:.1f} GB", files["llama"],
             ["--model", "benchmarks.llama_like:LlamaLike", "--model-kwargs", files["llama_kwargs"]],
             f"from benchmarks.llama_like import LlamaLike; m = LlamaLike(**{json.loads(files['llama_kwargs'])!r})",
             "benchmarks.llama_like:LlamaLike", ["--model-kwargs", files["llama_kwargs"]]),
        ]
        wanted = set(a.cases.split(","))
        cases = [c for c in cases if ("llama" if c[0].startswith("llama") else c[0]) in wanted]
        ck = ckptlint_cmd()
        rows = []
        snaps = []
        for name, path, model_args, build, spec, snap_kwargs in cases:
            summary = compat_summary(["check", path, *model_args])
            if summary["rc"] != 0 or not summary["strict_ok"]:
                raise RuntimeError(f"{name}: ckptlint does not report a clean strict load: {summary}")
            EXTRA_ENV.clear()
            EXTRA_ENV["CKPTLINT_NO_CACHE"] = "1"  # cold: every run builds the model (imports torch)
            cw, cr = repeat([*ck, "check", path, *model_args], a.repeat)
            print(f"  {name}: ckptlint --model, cold {cw:.2f} s {cr:.0f} MiB", flush=True)
            EXTRA_ENV.clear()
            EXTRA_ENV["CKPTLINT_CACHE_DIR"] = os.path.join(workdir, "cache")
            measure([*ck, "check", path, *model_args])  # primes the target cache
            ww, wr = repeat([*ck, "check", path, *model_args], a.repeat)
            print(f"  {name}: ckptlint --model, repeat (cached signature) {ww:.2f} s {wr:.0f} MiB", flush=True)
            EXTRA_ENV.clear()
            EXTRA_ENV["CKPTLINT_NO_CACHE"] = "1"
            bw, br = repeat(baseline_cmd(build, path), a.repeat)
            print(f"  {name}: usual script {bw:.2f} s {br:.0f} MiB", flush=True)
            rows.append((f"{name} --model (cold)", cw, bw, cr, br))
            rows.append((f"{name} --model (repeat, cached)", ww, bw, wr, br))
            if a.careful_baseline:
                xw, xr = repeat(baseline_cmd(build, path, "careful"), a.repeat)
                rows.append((f"{name} --model vs meta+mmap+assign", cw, xw, cr, xr))
            snap = os.path.join(workdir, spec.split(":")[-1] + ".snapshot.json")
            p = subprocess.run([*ck, "snapshot", spec, *snap_kwargs, "-o", snap], capture_output=True, text=True,
                               env=env())
            if p.returncode != 0:
                raise RuntimeError(f"snapshot failed: {p.stderr}")
            made.append(snap)
            torch_imported, rc = torch_probe(["check", path, "--snapshot", snap])
            sw, sr = repeat([*ck, "check", path, "--snapshot", snap], max(a.repeat, 5))
            snaps.append((name, sw, sr, torch_imported, rc))
            rows.append((f"{name} --snapshot", sw, bw, sr, br))
            print(f"  {name}: ckptlint --snapshot {sw:.3f} s {sr:.0f} MiB torch imported: {torch_imported}", flush=True)

        print()
        measured_torch = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"],
                                        capture_output=True, text=True).stdout.strip()
        print(f"date {datetime.date.today()}  cpus {os.cpu_count()}  python {platform.python_version()}  "
              f"torch {measured_torch}  peak RSS via {'/usr/bin/time -v' if GNU_TIME else 'getrusage'}  "
              f"median of {a.repeat}")
        head = f"{'case':44} {'ckptlint':>9} {'baseline':>9} {'speedup':>8} {'ck RSS':>9} {'base RSS':>9} {'mem ratio':>9}"
        print(head)
        print("-" * len(head))
        for name, cw, bw, cr, br in rows:
            print(f"{name:44} {cw:8.2f}s {bw:8.2f}s {bw / cw:7.1f}x {cr:6.0f}MiB {br:6.0f}MiB {br / cr:8.1f}x")
        print()
        print(f"{'snapshot check':44} {'wall':>9} {'peak RSS':>9} {'torch':>8}")
        for name, sw, sr, ti, _ in snaps:
            print(f"{name:44} {sw:8.3f}s {sr:6.0f}MiB {'imported' if ti else 'no':>8}")
        print()
        print("(--snapshot rows: the same usual script as the baseline; the careful script is informational)")
        print()
        print("targets:")
        for label, suffix in (("cold", "--model (cold)"), ("repeat", "--model (repeat, cached)")):
            _, cw, bw, cr, br = next(r for r in rows if r[0].startswith("llama") and r[0].endswith(suffix))
            print(f"  2 GB file, {label:6}, >= 5x faster:         {bw / cw:5.1f}x  {'MET' if bw / cw >= 5 else 'MISSED'}")
            print(f"  2 GB file, {label:6}, >= 10x less peak RSS: {br / cr:5.1f}x  {'MET' if br / cr >= 10 else 'MISSED'}")
        for name, sw, _, ti, _ in snaps:
            print(f"  snapshot check ({name}), no torch, < 0.5 s: {sw:.3f} s, torch {'imported' if ti else 'not imported'}  "
                  f"{'MET' if sw < 0.5 and not ti else 'MISSED'}")
    finally:
        if not a.keep:
            for f in made:
                try:
                    os.remove(f)
                except OSError:
                    pass
            if not a.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
