"""One fuzz worker process: generate an input, read it with ckptlint and with the oracle, compare.

Started by tests/fuzz/pool.py. It imports torch once, limits its own address space,
works in a private directory under /dev/shm, and refuses to let torch's tar reader create
device nodes, FIFOs or links while extracting members (the generators never ask for them;
this holds even for a mutated header). Requests and replies are JSON lines on stdin/stdout.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import warnings
from typing import Any

EXTRA_ADDRESS_SPACE = 2 << 30
"""Address space the worker may add over what torch's import took (the oracle's bound, not ckptlint's)."""


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def setup() -> str:
    """Import everything, then lock the process down; returns the private working directory."""
    import torch  # noqa: F401 - imported before the limits: its import maps gigabytes of address space

    import ckptlint.checker  # noqa: F401

    from .oracle import install_torchscript_guard

    install_torchscript_guard()
    warnings.simplefilter("ignore")
    work = tempfile.mkdtemp(prefix="ckptlint-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.chdir(work)
    os.environ["TMPDIR"] = work
    tempfile.tempdir = work
    limit = _vm_size() + EXTRA_ADDRESS_SPACE
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _no_special_files()
    return work


def _no_special_files() -> None:
    import tarfile

    def refuse(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, targetpath: object) -> None:
        raise tarfile.ExtractError(f"fuzz oracle: refuses to create {tarinfo.name!r} (type {tarinfo.type!r})")

    tarfile.TarFile.makedev = refuse  # type: ignore[method-assign]
    tarfile.TarFile.makefifo = refuse  # type: ignore[method-assign]
    tarfile.TarFile.makelink = refuse  # type: ignore[method-assign]


def handle(req: dict[str, Any], work: str) -> dict[str, Any]:
    from . import features
    from .compare import compare, misses_bytes_io_globals, past_a_lower_bound
    from .generate import generate
    from .nondet import set_aside, short_deflate_members
    from .oracle import read_with_ckptlint, read_with_oracle

    if "data" in req:
        data, family, desc = bytes.fromhex(req["data"]), req.get("family", "bytes"), "given bytes"
        features.reset()
    else:
        data, family, desc = generate(int(req["seed"]), int(req["index"]), req.get("families"),
                                     req.get("exclude") or ())
    path = os.path.join(work, "input.pt")
    with open(path, "wb") as f:
        f.write(data)
    only = req.get("only")
    ck = read_with_ckptlint(path)
    oracle = None if only == "ckptlint" else read_with_oracle(path)
    limited = oracle is not None and any(
        o.startswith("MemoryError") for o in (oracle.torch.outcome, oracle.pickle.outcome, oracle.weights_only_outcome))
    found = compare(family, ck, None if limited else oracle)  # ckptlint's own conduct is checked either way
    nondet = None
    short = short_deflate_members(data)
    if short and oracle is not None and not limited:
        found, nondet = set_aside(family, found, ck, short)
    for name in os.listdir(work):  # whatever torch's tar reader extracted
        if name != "input.pt":
            p = os.path.join(work, name)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)
    reply: dict[str, Any] = {
        "family": family, "desc": desc, "size": len(data), "ck_seconds": ck.seconds, "ck_rss_kib": ck.rss_kib,
        "oracle_seconds": oracle.seconds if oracle else 0.0, "oracle_limited": limited,
        "disagreements": [d.to_json() for d in found], "ck_format": ck.format, "ck_error": ck.error,
        "features": sorted(features.USED),
        "weights_only_loads": bool(oracle and oracle.weights_only),
        "torch_globals": len(oracle.torch.globals) if oracle else 0,
        "pickle_globals": len(oracle.pickle.globals) if oracle else 0,
        "ck_unreadable": ck.error is not None,
        "nondeterministic": nondet,
        "past_lower_bound": bool(oracle and not limited and not nondet and past_a_lower_bound(ck, oracle)),
        "bytes_io_unreported": bool(oracle and not limited and not nondet and misses_bytes_io_globals(ck, oracle)),
    }
    if found or req.get("full"):
        reply["input"] = data.hex()
        reply["ckptlint"] = ck.to_json()
        reply["oracle"] = oracle.to_json() if oracle else None
    return reply


def main() -> None:
    work = setup()
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        reply = handle(req, work)
        reply["id"] = req.get("id")
        reply["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
