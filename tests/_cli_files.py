"""Torch-free checkpoint files for the CLI tests, written byte by byte (nothing here imports torch).

A torch zip is the three records ckptlint and torch look for (``data.pkl``, ``byteorder``,
``version``) around a hand-written pickle; safetensors is its JSON header plus zero bytes.
Globals are named, never executed.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def su(text: str) -> bytes:
    """BINUNICODE: a str of any content (escape sequences and newlines included)."""
    b = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def torch_zip(path: Path, pickle: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


def safetensors_bytes(shapes: Mapping[str, Sequence[int]]) -> bytes:
    """A safetensors file of float32 zeros with these tensor shapes, in this order."""
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        n = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def safetensors_file(path: Path, shapes: Mapping[str, Sequence[int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(shapes))
    return path


def safetensors(path: Path, names: tuple[str, ...] = ("w",)) -> Path:
    return safetensors_file(path, {n: [2] for n in names})


LINEAR = b"ctorch.nn.modules.linear\nLinear\n)\x81}b"
"""A pickled nn.Linear instance (NEWOBJ + BUILD): a full-model pickle's class."""
NAMESPACE = b"cargparse\nNamespace\n)\x81}b"
"""An argparse.Namespace: plain data weights_only refuses (CK104)."""


def system_call(key: str = "cmd") -> bytes:
    """``{key: os.system("true")}`` as torch's data.pkl would hold it: CK101."""
    return b"\x80\x02}" + su(key) + b"cos\nsystem\n(" + su("true") + b"tRs."


def full_model(extra: bytes = b"") -> bytes:
    """``{"m": Linear(...)}`` plus optional ``"a": <extra>``."""
    return b"\x80\x02}(" + su("m") + LINEAR + (su("a") + extra if extra else b"") + b"u."


def broken(path: Path) -> Path:
    """A safetensors file whose tensor claims 800 bytes for 2 floats: a broken checkpoint (CK901, exit 2)."""
    raw = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    return path


def snapshot(path: Path) -> Path:
    """A target snapshot (what ``ckptlint snapshot`` writes) of a model with one parameter ``w``: float32 [2],
    which the clean safetensors file matches. Checking against it needs no torch."""
    module = {"prefix": "", "cls": "netmod.Net", "version": None, "children": [], "none_children": [],
              "local": {"w": {"shape": [2], "dtype": "float32", "kind": "parameter"}},
              "extra_state": False, "load_rule": None, "unversioned_error": None}
    path.write_text(json.dumps({"snapshot_version": 1, "target": "netmod:Net", "kwargs": {}, "torch_version": "2.4",
                                "built_on": "meta", "notes": [], "shared": {}, "modules": [module]}))
    return path


def write_files(d: Path) -> dict[str, Path]:
    """One of each: clean, findings (CK101), unreadable (a broken checkpoint), and a snapshot target."""
    d.mkdir(parents=True, exist_ok=True)
    return {
        "clean": safetensors(d / "clean.safetensors"),
        "evil": torch_zip(d / "evil.pt", system_call()),
        "unreadable": broken(d / "broken.safetensors"),
        "snapshot": snapshot(d / "snap.json"),
    }
