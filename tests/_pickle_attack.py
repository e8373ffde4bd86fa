"""Helpers for the pickle VM tests: opcodes written by hand, as an attacker writes them, and the
proof that the real loader reaches the payload (run in a throwaway subprocess; the payload only
creates a marker file)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import ckptlint
from ckptlint.checker import FileReport, check_file

SYSTEM = {"os.system", "posix.system"}


def g(module: str, name: str) -> bytes:
    """GLOBAL."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def su(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def s0(text: str) -> bytes:
    """Protocol-0 STRING."""
    return b"S" + repr(text).encode() + b"\n"


def binbytes(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def system_call(marker: Path, proto0: bool = False) -> bytes:
    """``os.system("touch MARKER")`` left on the stack (REDUCE)."""
    arg = s0(f"touch {marker}") if proto0 else su(f"touch {marker}")
    return g("os", "system") + b"(" + arg + b"tR"


def reaches(path: Path, marker: Path, loader: str = "pickle") -> bool:
    """Load ``path`` the way a user would, in a subprocess; True when the payload ran.

    The load may fail afterwards (that is the point of most tests): only the marker counts."""
    if marker.exists():
        marker.unlink()
    if loader == "pickle":
        code = "import pickle, sys\nwith open(sys.argv[1], 'rb') as f:\n    pickle.load(f)\n"
    elif loader == "torch":
        code = "import torch, sys\ntorch.load(sys.argv[1], weights_only=False)\n"
    else:
        raise ValueError(loader)
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120,
                   cwd=path.parent)
    ran = marker.exists()
    if ran:
        marker.unlink()
    return ran


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def inspect_and_check(path: Path, marker: Path, **kw: object) -> tuple[ckptlint.Inventory, FileReport]:
    """ckptlint's view of the file; asserts that reading it ran nothing."""
    inv = ckptlint.inspect(path, **kw)  # type: ignore[arg-type]
    report = check_file(path, **kw)  # type: ignore[arg-type]
    assert not marker.exists(), "ckptlint executed the file"
    return inv, report


def qualnames(inv: ckptlint.Inventory) -> set[str]:
    return {g.qualname for g in inv.globals}
