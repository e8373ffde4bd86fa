"""Whole-process speed and peak memory of ``ckptlint check FILE`` against a minimal walker, picklescan
and torch.load(weights_only=True): the targets of issue #14.

Builds (once, cached in ``--workdir``) with torch:

- ``llama.pth``: a llama-like bf16 state_dict (benchmarks/llama_like.py, width 2048, MLP 5632, vocab
  32000, 16 layers, plus each layer's ``self_attn.rotary_emb.inv_freq`` buffer as older Hugging Face
  checkpoints carry it): 163 tensors, 1.9 GB;
- ``linear10k.pt`` / ``linear50k.pt``: ``nn.Sequential`` of 10,000 / 50,000 ``nn.Linear(4, 4)``,
  ``state_dict()``: 20,000 / 100,000 tensors (each its own storage, so as many zip records);
- ``two.pt``: ``nn.Linear(4, 4).state_dict()``: 2 tensors;
- ``small/``: 200 small checkpoints, each the state_dict of a resnet18-sized key set at small width
  (a stem conv, 16 conv + batch-norm blocks of 16 channels, a linear head: 99 tensors, ~170 KB).

Then times, as separate processes, paired and interleaved (each round runs every command once, the
order rotating; median of ``--runs`` rounds after one warm-up round), peak RSS from ``/usr/bin/time``:

- ``ckptlint check -qq FILE`` from a virtualenv holding a non-editable ``pip install`` of this
  repository's last commit (``--tree worktree``: the working tree) and picklescan, no torch
  (``--workdir/bench-venv``, reused; ckptlint reinstalled each run);
- ``python benchmarks/walker.py FILE`` (the minimal walker, same interpreter);
- ``picklescan -p FILE``;
- ``python -c "import torch; torch.load(FILE, weights_only=True)"`` (``--torch-python``, default this
  interpreter; not on the 100,000-tensor file);
- ``python -c pass`` (against the 2-tensor check);
- ``ckptlint check -qq -j 1 small/*`` against ``-j 2``;
- a calibration: the same pure-Python arithmetic in one process or split over two (forked), which
  says whether the machine had a second core to give while the ``-j`` pair ran.

Usage: python benchmarks/bench_reader.py [--workdir DIR] [--runs 5] [--quick] [--json OUT]
``--quick``: small stand-ins for every file and one round (smoke test; its ratios mean nothing).
Exit 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WALKER = REPO / "benchmarks" / "walker.py"
TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Sizes:
    llama_layers: int = 16
    llama_hidden: int = 2048
    llama_intermediate: int = 5632
    llama_vocab: int = 32000
    linear_a: int = 10_000
    linear_b: int = 50_000
    small_files: int = 200


FULL = Sizes()
QUICK = Sizes(llama_layers=2, llama_hidden=256, llama_intermediate=512, llama_vocab=1000, linear_a=300,
              linear_b=1500, small_files=12)


# -- building the files (a separate process with torch) ------------------------


def build(workdir: Path, sizes: Sizes) -> None:
    """Write the files that are missing; run in a process with torch (``--_build``)."""
    import torch
    from torch import nn

    sys.path.insert(0, str(REPO / "benchmarks"))
    LlamaLike = importlib.import_module("llama_like").LlamaLike

    workdir.mkdir(parents=True, exist_ok=True)
    llama = workdir / "llama.pth"
    if not llama.exists():
        with torch.device("meta"):
            model = LlamaLike(sizes.llama_vocab, sizes.llama_hidden, sizes.llama_intermediate, sizes.llama_layers)
        sd: dict[str, torch.Tensor] = {}
        for k, v in model.state_dict().items():
            sd[k] = torch.empty(v.shape, dtype=v.dtype).fill_(0.5)
            if k.endswith("self_attn.o_proj.weight"):
                head = sizes.llama_hidden // 32
                sd[k.replace("o_proj.weight", "rotary_emb.inv_freq")] = 1.0 / (
                    10000 ** (torch.arange(0, head, 2, dtype=torch.float32) / head))
        _save(torch, sd, llama)
        del sd
    for name, n in (("linear10k.pt", sizes.linear_a), ("linear50k.pt", sizes.linear_b)):
        if not (workdir / name).exists():
            _save(torch, nn.Sequential(*[nn.Linear(4, 4) for _ in range(n)]).state_dict(), workdir / name)
    if not (workdir / "two.pt").exists():
        _save(torch, nn.Linear(4, 4).state_dict(), workdir / "two.pt")
    small = workdir / "small"
    if len(list(small.glob("*.pt"))) != sizes.small_files or not (small / "v2").exists():
        shutil.rmtree(small, ignore_errors=True)
        small.mkdir()
        for i in range(sizes.small_files):
            torch.manual_seed(i)
            blocks = [m for _ in range(16) for m in (nn.Conv2d(16, 16, 3, bias=False), nn.BatchNorm2d(16))]
            net = nn.Sequential(nn.Conv2d(3, 16, 7, bias=False), *blocks, nn.Flatten(), nn.Linear(16, 10))
            _save(torch, net.state_dict(), small / f"net{i:03d}.pt")
        (small / "v2").write_text("99-tensor nets\n")


def _save(torch: object, obj: object, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)  # type: ignore[attr-defined]
    os.replace(tmp, path)  # an interrupted build never leaves a file that looks complete


# -- the environment -------------------------------------------------------------


def bench_venv(workdir: Path, tree: str) -> Path:
    """``workdir/bench-venv``: ckptlint (non-editable, reinstalled each run) and picklescan, no torch.

    ``tree`` ``HEAD`` installs the last commit (``git archive``: what the run's git hash names, without
    anyone's uncommitted edits); ``worktree`` the working tree as git sees it (tracked and new files)."""
    env = workdir / "bench-venv"
    py = env / "bin" / "python"
    fresh = not (env / "bin" / "picklescan").exists()
    if fresh:
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    with tempfile.TemporaryDirectory(prefix="ckptlint-src-") as src:
        if tree == "HEAD":
            archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        else:
            git = ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
            listed = subprocess.run(git, capture_output=True, check=True).stdout.decode().split("\0")
            for rel in filter(None, listed):
                if (REPO / rel).is_file():
                    dest = Path(src) / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / rel, dest)
        install = [src, "picklescan"] if fresh else ["--force-reinstall", "--no-deps", src]
        subprocess.run([str(py), "-m", "pip", "install", "-q", *install], check=True)
        if subprocess.run([str(env / "bin" / "ckptlint"), "rules"], capture_output=True).returncode != 0:
            subprocess.run([str(py), "-m", "pip", "install", "-q", src], check=True)  # a dependency was added
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0:
        raise SystemExit(f"{env} has torch: the check must be measured without it")
    return env


# -- measuring -------------------------------------------------------------------


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """User + system seconds of the command and every process it waited for (its -j workers)."""


def run_once(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) and exit status of one process (its CPU seconds: :func:`run_cpu`)."""
    return run_cpu(cmd)[:3]


def run_cpu(cmd: list[str]) -> tuple[float, float, int, float]:
    """:func:`run_once`'s three and the CPU seconds (user + system) of the command and its workers:
    on a shared machine the -j pair's wall times are noisy, the CPU it costs is not."""
    import resource

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        full = [TIME, "-f", "%M", "-o", out.name, *cmd] if os.path.exists(TIME) else cmd
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if os.path.exists(TIME):
            lines = [ln for ln in Path(out.name).read_text().splitlines() if ln.strip().isdigit()]
            rss = int(lines[-1]) / 1024 if lines else float("nan")
        else:  # pragma: no cover - without GNU time: this process's children, a high-water mark
            import resource

            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode not in (0, 1):
        sys.stderr.write(f"  ! {' '.join(cmd[:3])} … exited {proc.returncode}: {proc.stderr.decode()[-300:]}\n")
    return wall, rss, proc.returncode, cpu


def paired(commands: dict[str, list[str]], runs: int) -> dict[str, Sample]:
    """One warm-up round, then ``runs`` rounds; each round runs every command once, order rotating."""
    names = list(commands)
    for name in names:
        code = run_once(commands[name])[2]
        if code not in (0, 1) and (name == "ckptlint" or name.startswith("-j")):
            raise SystemExit(f"{' '.join(commands[name][:4])} … exited {code}: nothing to measure")
    samples = {name: Sample() for name in names}
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, rss, code, cpu = run_cpu(commands[name])
            samples[name].cpu.append(cpu)
            samples[name].wall.append(wall)
            samples[name].rss_mib.append(rss)
            samples[name].codes.append(code)
    return samples


def ratio(samples: dict[str, Sample], num: str, den: str) -> float:
    """Median of the per-round ratios ``num / den`` (paired: both ran in the same round)."""
    return statistics.median(a / b for a, b in zip(samples[num].wall, samples[den].wall, strict=True))


# -- the run -----------------------------------------------------------------------


def measure(workdir: Path, env: Path, torch_python: str, runs: int) -> dict[str, dict[str, Sample]]:
    py, ckptlint, picklescan = (str(env / "bin" / name) for name in ("python", "ckptlint", "picklescan"))
    load = "import sys, torch; torch.load(sys.argv[1], weights_only=True)"
    out: dict[str, dict[str, Sample]] = {}
    for case in ("llama", "linear10k", "linear50k", "two"):
        f = str(workdir / ("llama.pth" if case == "llama" else f"{case}.pt"))
        cmds = {"ckptlint": [ckptlint, "check", "-qq", f], "walker": [py, str(WALKER), f],
                "picklescan": [picklescan, "-p", f]}
        if case != "linear50k":
            cmds["torch.load"] = [torch_python, "-c", load, f]
        if case == "two":
            cmds["python -c pass"] = [py, "-c", "pass"]
        print(f"{case}: {len(cmds)} commands, {runs} rounds …", flush=True)
        out[case] = paired(cmds, runs)
    small = sorted(str(p) for p in (workdir / "small").glob("*.pt"))
    print(f"small: -j 1 / -j 2 over {len(small)} files, {runs} rounds …", flush=True)
    out["small"] = paired({"-j 1": [ckptlint, "check", "-qq", "-j", "1", *small],
                           "-j 2": [ckptlint, "check", "-qq", "-j", "2", *small]}, runs)
    # how much a second process can gain on this machine now: pure Python arithmetic, the same work in
    # one process or split over two (another job on the machine takes cores from both)
    work = ("import os, sys; n = int(sys.argv[1]); pid = os.fork() if n == 1 else 0; sum(range(n * 10**7))\n"
            "if pid: os.waitpid(pid, 0)")
    out["cores"] = paired({"1 process": [py, "-c", work, "2"], "2 processes": [py, "-c", work, "1"]}, runs)
    return out


LABELS = {"llama": "llama-like 1.9 GB .pth (163 tensors)", "linear10k": "10,000 Linear(4,4) (20,000 tensors)",
          "linear50k": "50,000 Linear(4,4) (100,000 tensors)", "two": "2-tensor file", "small": "200 small files",
          "cores": "calibration: pure-Python work, 1 vs 2 processes"}


def targets(res: dict[str, dict[str, Sample]]) -> list[tuple[str, float, str, bool]]:
    """(target, measured, requirement, met) for each target of the issue; a ckptlint run that
    failed (exit 2: the file was not read) makes its file's targets unmet."""
    rows = _targets(res)
    failed = {LABELS[case] for case, samples in res.items() for name, s in samples.items()
              if name in ("ckptlint", "-j 1", "-j 2") and any(code not in (0, 1) for code in s.codes)}
    return [(t, m, need + (" (ckptlint FAILED)" if t.split(":")[0] in failed else ""),
             ok and t.split(":")[0] not in failed) for t, m, need, ok in rows]


def _targets(res: dict[str, dict[str, Sample]]) -> list[tuple[str, float, str, bool]]:
    rows = []
    for case in ("llama", "linear10k", "linear50k"):
        r = ratio(res[case], "ckptlint", "walker")
        rows.append((f"{LABELS[case]}: ckptlint ÷ walker", r, "≤ 1.5", r <= 1.5))
    for case in ("llama", "linear10k", "linear50k"):
        r = ratio(res[case], "picklescan", "ckptlint")
        rows.append((f"{LABELS[case]}: picklescan ÷ ckptlint", r, "≥ 2", r >= 2))
    for case, need in (("llama", 50.0), ("linear10k", 15.0)):
        r = ratio(res[case], "torch.load", "ckptlint")
        rows.append((f"{LABELS[case]}: torch.load ÷ ckptlint", r, f"≥ {need:g}", r >= need))
    r = ratio(res["two"], "ckptlint", "python -c pass")
    rows.append((f"{LABELS['two']}: ckptlint ÷ python -c pass", r, "≤ 5", r <= 5))
    r = ratio(res["small"], "-j 1", "-j 2")
    rows.append((f"{LABELS['small']}: (-j 1) ÷ (-j 2)", r, "≥ 1.7", r >= 1.7))
    c, w = (statistics.median(res["linear50k"][k].rss_mib) for k in ("ckptlint", "walker"))
    rows.append((f"{LABELS['linear50k']}: peak RSS ckptlint ÷ walker", c / w, "≤ 1.5", c / w <= 1.5))
    return rows


def report(res: dict[str, dict[str, Sample]], runs: int) -> tuple[str, list[tuple[str, float, str, bool]]]:
    lines = [f"median of {runs} paired rounds; wall s / peak RSS MiB; ratio = command ÷ ckptlint, per round", ""]
    lines.append("| file | command | wall | peak RSS | ÷ ckptlint |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for case, samples in res.items():
        base = {"small": "-j 2", "cores": "2 processes"}.get(case, "ckptlint")
        for name, s in samples.items():
            lines.append(f"| {LABELS[case]} | {name} | {statistics.median(s.wall):.3f} s | "
                         f"{statistics.median(s.rss_mib):.0f} MiB | {ratio(samples, name, base):.2f} |")
    rows = targets(res)
    lines += ["", "| target | measured | required | |", "| --- | ---: | --- | --- |"]
    lines += [f"| {t} | {m:.2f} | {need} | {'met' if ok else 'NOT MET'} |" for t, m, need, ok in rows]
    spare = ratio(res["cores"], "1 process", "2 processes")
    verdict = "a second core was free" if spare >= 1.8 else "NO spare core: the -j ratio is not meaningful"
    lines += ["", f"Calibration: two processes did pure-Python work {spare:.2f} times as fast as one ({verdict})."]
    c1, c2 = (statistics.median(res["small"][k].cpu) for k in ("-j 1", "-j 2"))
    cpu = (f"CPU (user + system, workers included) over the 200 small files: -j 1 {c1:.3f} s, -j 2 {c2:.3f} s: "
           f"the pool's overhead is {c2 - c1:+.3f} s ({(c2 / c1 - 1) * 100:+.0f}%); with both cores busy from "
           f"the start, -j 2 could be at most {2 * c1 / c2:.2f} times as fast (less its serial start-up).")
    lines += [cpu]
    return "\n".join(lines), rows


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ckptlint-bench-reader"),
                    help="where the files and the bench venv are kept between runs (about 2.1 GB)")
    ap.add_argument("--runs", type=int, default=5, help="paired rounds (median reported; default 5)")
    ap.add_argument("--quick", action="store_true", help="small stand-in files, one round: a smoke test")
    ap.add_argument("--torch-python", default=sys.executable, help="the interpreter with torch (building, torch.load)")
    ap.add_argument("--json", metavar="OUT", help="also write every sample and the targets to OUT")
    ap.add_argument("--tree", choices=("HEAD", "worktree"), default="HEAD",
                    help="install the last commit (default) or the working tree as it is")
    ap.add_argument("--_build", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--_quick-sizes", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._build:
        build(Path(args._build), QUICK if args._quick_sizes else FULL)
        return 0
    workdir = Path(args.workdir) / ("quick" if args.quick else "full")
    runs = 1 if args.quick else args.runs
    print(f"building files in {workdir} (cached) …", flush=True)
    subprocess.run([args.torch_python, __file__, "--_build", str(workdir), *(["--_quick-sizes"] if args.quick else [])],
                   check=True)
    print("installing ckptlint into the bench venv …", flush=True)
    env = bench_venv(Path(args.workdir), args.tree)
    res = measure(workdir, env, args.torch_python, runs)
    text, rows = report(res, runs)
    versions = _versions(env, args.torch_python)
    print()
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {versions}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, git {_head()}"
          f"{' + working tree' if args.tree == 'worktree' else ''}"
          f"{' (QUICK: stand-in files, ratios mean nothing)' if args.quick else ''}")
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "quick": args.quick, "runs": runs, "git": _head(), "tree": args.tree, "cpus": os.cpu_count(),
            "versions": versions,
            "samples": {c: {n: asdict(s) for n, s in v.items()} for c, v in res.items()},
            "targets": [{"target": t, "measured": m, "required": need, "met": ok} for t, m, need, ok in rows],
        }, indent=1) + "\n")
    return 0 if all(ok for *_, ok in rows) else 1


def _versions(env: Path, torch_python: str) -> str:
    """Python, ckptlint and picklescan of the bench venv; torch of ``--torch-python``."""
    code = ("import sys, importlib.metadata as m; print(f'Python {sys.version.split()[0]}, ' + ', '.join("
            "f'{d} {m.version(d)}' for d in sys.argv[1:]))")
    venv = subprocess.run([str(env / "bin" / "python"), "-c", code, "ckptlint", "picklescan"],
                          capture_output=True, text=True).stdout.strip()
    torch = subprocess.run([torch_python, "-c", code, "torch"], capture_output=True, text=True).stdout.strip()
    return f"{venv}; {torch.split(', ', 1)[-1]}"


def _head() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
