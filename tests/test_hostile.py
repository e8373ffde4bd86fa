"""Hostile input: nothing from the file runs, and every bound ends in a clean error."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from ckptlint import CheckpointError, Limits

# ---- payloads that would leave a marker if anything ran ----------------------

class _Touch:
    """Pickles as os.system("touch MARKER") — the classic payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_module(tmp_path: Path) -> Path:
    """An importable module whose import (or whose function) creates a marker file."""
    pkg = tmp_path / "site"
    pkg.mkdir()
    marker = tmp_path / "imported.marker"
    (pkg / "ckptlint_evilmod.py").write_text(textwrap.dedent(f"""
        open({str(marker)!r}, "w").write("imported")
        def boom(*a, **k):
            open({str(marker)!r}, "w").write("called")
        class Thing:
            def __init__(self, *a):
                boom()
    """))
    return marker


def _payload_files(tmp_path: Path, marker: Path) -> list[Path]:
    import torch

    files = []
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"w": 1, "x": _Touch(marker)}, protocol=2))
    files.append(raw)
    proto0 = tmp_path / "proto0.ckpt"
    proto0.write_bytes(pickle.dumps(_Touch(marker), protocol=0))
    files.append(proto0)
    zipped = tmp_path / "zipped.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "evil": _Touch(marker)}, zipped)
    files.append(zipped)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2), "evil": _Touch(marker)}, legacy, _use_new_zipfile_serialization=False)
    files.append(legacy)
    # A global naming an importable module with an import-time side effect.
    imp = tmp_path / "import.bin"
    imp.write_bytes(b"\x80\x02cckptlint_evilmod\nThing\nq\x00)\x81q\x01.")
    files.append(imp)
    reduce_call = tmp_path / "reduce.pt"
    reduce_call.write_bytes(b"\x80\x02cckptlint_evilmod\nboom\nq\x00)R.")
    files.append(reduce_call)
    stack_global = tmp_path / "stack_global.pkl"
    stack_global.write_bytes(b"\x80\x04\x8c\x10ckptlint_evilmod\x8c\x04boom\x93)R.")
    files.append(stack_global)
    return files


@pytest.mark.integration  # runs the CLI in a subprocess on files torch wrote
def test_inspect_and_check_execute_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "payload.marker"
    import_marker = _evil_module(tmp_path)
    files = _payload_files(tmp_path, marker)
    script = textwrap.dedent("""
        import sys, ckptlint, ckptlint.cli
        found = []
        for p in sys.argv[1:]:
            inv = ckptlint.inspect(p)
            found.append(sorted(g.qualname for g in inv.globals))
        assert ckptlint.cli.main(["inspect", *sys.argv[1:]]) == 0
        assert ckptlint.cli.main(["check", *sys.argv[1:]]) == 1
        assert ckptlint.cli.main(["check", "--format", "json", *sys.argv[1:]]) == 1
        assert "ckptlint_evilmod" not in sys.modules
        assert "torch" not in sys.modules
        print("FOUND", found)
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, files)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert not import_marker.exists()
    # Every payload's global was seen, so the reader did walk them.
    found = proc.stdout.rsplit("FOUND", 1)[1]
    assert found.count("posix.system") + found.count("os.system") >= 4
    assert found.count("ckptlint_evilmod.") == 3


def test_payload_globals_recorded_with_offsets(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    p = tmp_path / "raw.pkl"
    data = pickle.dumps({"x": _Touch(marker)}, protocol=2)
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    (g,) = [g for g in inv.globals if g.name == "system"]
    assert g.module in ("posix", "nt", "os")
    assert data[g.offset:g.offset + 1] == b"c"  # GLOBAL opcode sits at the recorded offset
    assert inv.facts.format == "pickle"
    assert not marker.exists()


# ---- bounds -------------------------------------------------------------------

def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _reason(p: Path, limits: Limits | None = None) -> str:
    with pytest.raises(CheckpointError) as ei:
        ckptlint.inspect(p, **({"limits": limits} if limits else {}))
    assert ei.value.path == str(p)
    assert "\n" not in ei.value.reason
    return ei.value.reason


def test_huge_memo_index_costs_nothing(tmp_path: Path) -> None:
    # One LONG_BINPUT asks CPython's C unpickler for a 16 GB memo array.
    p = _write(tmp_path, "memo.pkl", b"\x80\x02]r\xfe\xff\xff\x7f.")
    inv = ckptlint.inspect(p)
    assert inv.structure == []


def test_memo_index_beyond_bound(tmp_path: Path) -> None:
    p = _write(tmp_path, "memo.pkl", b"\x80\x02]r\xfe\xff\xff\x7f.")
    assert "memo index" in _reason(p, Limits(max_memo_index=1000))


def test_opcode_bound(tmp_path: Path) -> None:
    p = _write(tmp_path, "many.pkl", b"\x80\x02" + b"N0" * 5000 + b"N.")
    assert "opcodes" in _reason(p, Limits(max_opcodes=1000))
    assert ckptlint.inspect(p).structure is None


def test_mark_depth_bound(tmp_path: Path) -> None:
    p = _write(tmp_path, "marks.pkl", b"\x80\x02" + b"(" * 200_000 + b"N.")
    assert "nesting" in _reason(p)


def test_deep_nesting_is_truncated_not_recursed(tmp_path: Path) -> None:
    # 100k empty lists on the stack, each APPENDed into the one below: 100k levels deep.
    depth = 100_000
    p = _write(tmp_path, "deep.pkl", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    inv = ckptlint.inspect(p)
    assert any("nesting deeper" in n for n in inv.notes)


def test_exponential_sharing_is_linear(tmp_path: Path) -> None:
    # L0 = [None]; L(i+1) = [Li, Li]: 2**60 paths through 61 containers.
    parts = [b"\x80\x02]q\x00Na"]
    for i in range(60):
        parts.append(b"]q" + bytes([i + 1]) + b"h" + bytes([i]) + b"ah" + bytes([i]) + b"a")
    p = _write(tmp_path, "share.pkl", b"".join(parts) + b".")
    inv = ckptlint.inspect(p)
    assert inv.format == "pickle"
    assert "__ref__" in repr(inv.structure)


@pytest.mark.parametrize("data,needle", [
    (b"\x80\x02\x8d" + struct.pack("<Q", 1 << 62) + b"x", "truncated"),  # BINUNICODE8 of 4 EiB
    (b"\x80\x02\x8e" + struct.pack("<Q", 1 << 62) + b"x", "truncated"),  # BINBYTES8
    (b"\x80\x02\x96" + struct.pack("<Q", 1 << 62) + b"x", "truncated"),  # BYTEARRAY8
    (b"\x80\x02X" + struct.pack("<I", 1 << 31) + b"x", "truncated"),  # BINUNICODE
    (b"\x80\x02\x8b" + struct.pack("<i", 1 << 30) + b"x", "LONG4"),
    (b"\x80\x02\x95" + struct.pack("<Q", 1 << 62) + b"N.", "past the end"),  # FRAME past the end
    (b"\x80\x02N", "without STOP"),
    (b"\x80\x02h\x05.", "memo"),  # GET of a missing memo key
    (b"\x80\x02R.", "underflow"),
    (b"\x80\x02\xff.", "opcode"),
    (b"\x80\x02\x97.", "buffers"),  # NEXT_BUFFER without buffers
    (b"\x80\x02I99999999999999999999999999" + b"9" * 5000 + b"\n.", "integer"),
])
def test_hostile_pickles_end_cleanly(tmp_path: Path, data: bytes, needle: str) -> None:
    p = _write(tmp_path, "bad.pkl", data)
    assert needle in _reason(p)


def test_zip_bomb_member_is_bounded(tmp_path: Path) -> None:
    p = tmp_path / "bomb.pt"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02N" + b"0N" * (4 << 20) + b".")
        z.writestr("archive/version", "3\n")
    reason = _reason(p, Limits(max_pickle_bytes=1 << 20))
    assert "bytes" in reason


def test_truncated_zip(tmp_path: Path, torch: ModuleType) -> None:

    p = tmp_path / "full.pt"
    torch.save({"w": torch.ones(100)}, p)
    data = p.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        q = _write(tmp_path, f"cut{cut}.pt", data[:cut])
        _reason(q)


def test_truncated_legacy(tmp_path: Path, torch: ModuleType) -> None:

    p = tmp_path / "full.pt"
    torch.save({"w": torch.ones(100)}, p, _use_new_zipfile_serialization=False)
    data = p.read_bytes()
    q = _write(tmp_path, "cut.pt", data[:60])
    _reason(q)


@pytest.mark.parametrize("header", [
    b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}',  # wrong byte count
    b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',  # hole at start
    b'{"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}',  # unknown dtype
    b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}',  # duplicate key
    b'{"__metadata__": {"x": 1}}',  # metadata values must be strings
    b'{"a": ',  # not JSON
])
def test_bad_safetensors(tmp_path: Path, header: bytes) -> None:
    data = struct.pack("<Q", len(header)) + header + b"\x00" * 4
    _reason(_write(tmp_path, "bad.safetensors", data))


def test_safetensors_header_length_bound(tmp_path: Path) -> None:
    header = b"{" + b" " * 64
    data = struct.pack("<Q", len(header)) + header
    p = _write(tmp_path, "big.safetensors", data)
    assert "limit max_header_bytes=16 exceeded" in _reason(p, Limits(max_header_bytes=16))


def test_shard_outside_folder_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "model.safetensors.index.json"
    p.write_text('{"metadata": {}, "weight_map": {"w": "../../etc/passwd"}}')
    assert "outside" in _reason(p)


def test_random_bytes_never_traceback(tmp_path: Path) -> None:
    import random

    rng = random.Random(1234)
    for i in range(300):
        n = rng.randrange(0, 300)
        head = rng.choice([b"", b"\x80\x02", b"PK\x03\x04", b"\x80\x04\x95", b"(", b"c"])
        p = _write(tmp_path, f"r{i}.bin", head + bytes(rng.randrange(256) for _ in range(n)))
        try:
            ckptlint.inspect(p)
        except CheckpointError as e:
            assert "\n" not in e.reason


def test_check_with_a_target_never_tracebacks_on_mutated_files(tmp_path: Path, torch: ModuleType) -> None:
    import argparse
    import random

    import numpy as np

    from ckptlint.checker import check_file
    from ckptlint.targets.resolve import resolve_target

    rng = random.Random(7)
    bases = []
    for obj, kw in [({"a": torch.ones(3), "b": [torch.zeros(2, 2)], "n": 1}, {}),
                    ({"model": torch.nn.Linear(2, 2).state_dict(), "args": argparse.Namespace(x=1),
                      "np": np.zeros(2)}, {}),
                    (torch.nn.Sequential(torch.nn.Linear(2, 2)), {}),
                    ({"a": torch.ones(3)}, {"_use_new_zipfile_serialization": False}),
                    ({"a": torch.ones(3)}, {"pickle_protocol": 4})]:
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        bases.append(buf.getvalue())
    from ckptlint.report.check_json import file_dict

    target = resolve_target(model=torch.nn.Sequential(torch.nn.Linear(2, 2)))
    for i in range(400):
        src = bytearray(rng.choice(bases))
        for _ in range(rng.randrange(1, 6)):
            src[rng.randrange(len(src))] = rng.randrange(256)
        p = _write(tmp_path, f"m{i % 20}.pt", bytes(src))
        report = check_file(p, target=target if i % 2 else None)
        file_dict(report)  # the JSON reporter encodes it
        assert report.error is None or "\n" not in report.error
