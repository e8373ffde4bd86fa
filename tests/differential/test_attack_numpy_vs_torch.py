"""numpy callables the old "lower-case numpy is plain data" rule let through (issue #11), each in a
torch.save-shaped archive built as an attacker builds it.

For every file, one throwaway subprocess (payloads only create a file named ``MARKER`` in the
working directory it is given) proves three things with the real loader:

* ``torch.load(weights_only=False)`` reaches the payload;
* ``torch.load(weights_only=True)`` refuses the file, as ckptlint's verdict says;
* following the advice the old CK104 line gave (``torch.serialization.add_safe_globals([...])``)
  makes ``torch.load(weights_only=True)`` run it: which is why ckptlint must never give it.

ckptlint must call each one an error, never "plain data" (CK104), and advise no allowlisting.
``numpy.ctypeslib.load_library`` is proven by the ``ctypes.dlopen`` audit event on the attacker's
file (an empty file: dlopen fails right after the event; no library code runs).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ckptlint.checker import FileReport, check_file


def g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def u(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def call(module: str, name: str, *args: bytes) -> bytes:
    return g(module, name) + b"(" + b"".join(args) + b"tR"


def cases(lib: Path) -> dict[str, tuple[str, bytes]]:
    """name -> (the global, data.pkl body that calls it and leaves a dict)."""
    one = b"]G?\xf0\x00\x00\x00\x00\x00\x00a"  # [1.0]
    code = "open('MARKER', 'w').close()"
    return {
        "savetxt": ("numpy.savetxt", call("numpy", "savetxt", u("MARKER"), one)),
        "memmap": ("numpy.memmap", call("numpy", "memmap", u("MARKER"), u("uint8"), u("w+"), b"K\x00",
                                         b"K\x01\x85")),
        # spelled at the defining module: torch's allowlist keys by __module__ + __qualname__
        "testing_runstring": ("numpy.testing._private.utils.runstring",
                              call("numpy.testing._private.utils", "runstring", u(code), b"}")),
        "testing_measure": ("numpy.testing._private.utils.measure",
                            call("numpy.testing._private.utils", "measure", u(code))),
        "ctypeslib_load_library": ("numpy.ctypeslib.load_library",
                                   call("numpy.ctypeslib", "load_library", u(lib.name), u(str(lib.parent)))),
    }


def archive(path: Path, body: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + body + b"0}.")
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


PROOF = textwrap.dedent("""
    import importlib, json, os, sys, warnings
    warnings.simplefilter("ignore")
    import torch
    lib = sys.argv[1]
    def hook(event, args):
        if event == "ctypes.dlopen" and args and str(args[0]) == lib:
            open("MARKER", "w").close()
    sys.addaudithook(hook)
    out = {}
    for item in sys.argv[2:]:
        path, qualname = item.split("=")
        module, name = qualname.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), name)
        for how in ("unsafe", "weights_only", "advised"):
            d = os.path.join(os.path.dirname(path), how)
            os.makedirs(d, exist_ok=True)
            os.chdir(d)
            if how == "advised":
                torch.serialization.add_safe_globals([obj])
            try:
                torch.load(path, weights_only=how != "unsafe")
                result = "loaded"
            except BaseException as e:
                result = type(e).__name__
            torch.serialization.clear_safe_globals()
            out[f"{path}:{how}"] = [result, os.path.exists("MARKER")]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, Path]]]:
    root = tmp_path_factory.mktemp("numpy_attacks")
    lib = root / "libckptlint_attack.so"
    lib.write_bytes(b"")  # load_library wants the file to exist; dlopen of an empty file fails
    files = {}
    for name, (qualname, body) in cases(lib).items():
        (root / name).mkdir()
        files[name] = (qualname, archive(root / name / "model.pt", body))
    return lib, files


@pytest.fixture(scope="module")
def torch_did(corpus: tuple[Path, dict[str, tuple[str, Path]]]) -> dict[str, list[object]]:
    lib, files = corpus
    args = [f"{p}={q}" for q, p in files.values()]
    proc = subprocess.run([sys.executable, "-c", PROOF, str(lib), *args], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, list[object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _no_allowlist_advice(report: FileReport) -> None:
    assert report.verdict is not None
    assert "add_safe_globals" not in report.verdict.advice
    assert all("add_safe_globals" not in (f.fix or "") for f in report.findings)


@pytest.mark.parametrize("name", sorted(cases(Path("/x/lib.so"))))
def test_numpy_callable_is_an_error_and_never_advised(
        name: str, corpus: tuple[Path, dict[str, tuple[str, Path]]], torch_did: dict[str, list[object]]) -> None:
    qualname, path = corpus[1][name]
    unsafe = torch_did[f"{path}:unsafe"]
    refused = torch_did[f"{path}:weights_only"]
    advised = torch_did[f"{path}:advised"]
    assert unsafe[1] is True, f"torch.load(weights_only=False) never reached {qualname}: {unsafe}"
    assert refused == ["UnpicklingError", False], refused
    assert advised[1] is True, f"allowlisting {qualname} does not make weights_only=True run it: {advised}"
    report = check_file(path)
    assert report.error is None, report.error
    errors = [f for f in report.findings if f.severity == "error" and qualname in f.message]
    assert errors, [(f.code, f.severity, f.message) for f in report.findings]
    assert not any(f.code == "CK104" for f in report.findings)
    assert report.verdict is not None and report.verdict.loads is False
    assert report.verdict.categories[qualname] == "dangerous"
    _no_allowlist_advice(report)
    assert not (path.parent / "MARKER").exists()  # ckptlint itself ran nothing
