"""Containers are read the way torch reads them; where readers could disagree, it is a finding."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ckptlint
from ckptlint.checker import check_file

EVIL = b"\x80\x02cposix\nsystem\nX\x05\x00\x00\x00touchq\x00\x85R."  # never executed here


def _torch_zip_members(torch: ModuleType) -> list[tuple[str, bytes]]:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    return [(i.filename, z.read(i)) for i in z.infolist()]


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def _codes(path: Path) -> set[str]:
    return {f.code for f in check_file(path).findings}


def _torch_loads(torch: ModuleType, path: Path) -> Any:
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("evil_first", [True, False])
def test_duplicate_member_reads_what_torch_reads(torch: ModuleType, tmp_path: Path, evil_first: bool) -> None:
    members = _torch_zip_members(torch)
    out: list[tuple[str, bytes]] = []
    for name, data in members:
        if name.endswith("data.pkl"):
            alt = pickle.dumps({"alt": 1}, protocol=2)
            out += [(name, alt), (name, data)] if evil_first else [(name, data), (name, alt)]
        else:
            out.append((name, data))
    p = _write_zip(tmp_path / "dup.pt", out)
    loaded = _torch_loads(torch, p)
    inv = ckptlint.inspect(p)
    if isinstance(loaded, dict) and "alt" in loaded:
        assert inv.structure == {"alt": 1}
    else:
        assert [t.path for t in inv.tensors] == [("w",)]
    assert {"CK106", "CK107"} <= _codes(p)


def test_duplicate_member_hiding_a_payload(torch: ModuleType, tmp_path: Path) -> None:
    members = _torch_zip_members(torch)
    out: list[tuple[str, bytes]] = []
    for name, data in members:
        out += [(name, EVIL), (name, data)] if name.endswith("data.pkl") else [(name, data)]
    p = _write_zip(tmp_path / "dup_evil.pt", out)
    _torch_loads(torch, p)  # torch reads the later, clean copy
    codes = _codes(p)
    assert {"CK101", "CK106", "CK107"} <= codes


def test_bad_crc_is_read_like_torch(torch: ModuleType, tmp_path: Path) -> None:
    p = _write_zip(tmp_path / "crc.pt", _torch_zip_members(torch))
    data = bytearray(p.read_bytes())
    # Corrupt the CRC of data.pkl in both its local and central headers.
    for sig, crc_at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        pos = data.find(sig)
        while pos >= 0:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if data[name_at:name_at + 16].endswith(b"data.pkl") or b"data.pkl" in data[name_at:name_at + 20]:
                struct.pack_into("<I", data, pos + crc_at, 0xDEADBEEF)
                break
            pos = data.find(sig, pos + 4)
    p.write_bytes(bytes(data))
    with pytest.raises(zipfile.BadZipFile), zipfile.ZipFile(p) as z:  # Python's zipfile verifies CRCs ...
        z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    loaded = _torch_loads(torch, p)  # ... torch does not
    inv = ckptlint.inspect(p)
    assert [t.shape for t in inv.tensors] == [tuple(loaded["w"].shape)]
    assert any("CRC-32" in a for a in inv.anomalies)  # the two readers disagree: an anomaly


def test_local_and_central_names_differ(torch: ModuleType, tmp_path: Path) -> None:
    p = _write_zip(tmp_path / "names.pt", _torch_zip_members(torch))
    data = bytearray(p.read_bytes())
    pos = data.find(b"PK\x03\x04")
    name_len = struct.unpack_from("<H", data, pos + 26)[0]
    name = bytes(data[pos + 30:pos + 30 + name_len])
    assert name.endswith(b"data.pkl")
    data[pos + 30:pos + 30 + name_len] = name.replace(b"data.pkl", b"DATA.pkl")
    p.write_bytes(bytes(data))
    inv = ckptlint.inspect(p)
    assert any("local header" in a for a in inv.anomalies)
    assert "CK107" in _codes(p)


def test_nul_byte_in_member_name(torch: ModuleType, tmp_path: Path) -> None:
    members = _torch_zip_members(torch) + [("archive/x\x01.pkl", pickle.dumps(1, protocol=2))]
    p = _write_zip(tmp_path / "nul.pt", members)  # zipfile cuts names at NUL: patch the bytes
    p.write_bytes(p.read_bytes().replace(b"archive/x\x01.pkl", b"archive/x\x00.pkl"))
    assert any("NUL" in a for a in ckptlint.inspect(p).anomalies)


def test_pickle_hidden_in_an_unreferenced_member(torch: ModuleType, tmp_path: Path) -> None:
    members = _torch_zip_members(torch) + [("archive/data/99", EVIL)]
    p = _write_zip(tmp_path / "hidden.pt", members)
    _torch_loads(torch, p)  # torch never looks at it
    codes = _codes(p)
    assert {"CK101", "CK106"} <= codes


def test_pickle_zip_polyglot_is_a_pickle_to_torch(torch: ModuleType, tmp_path: Path) -> None:
    zipped = tmp_path / "z.pt"
    _write_zip(zipped, _torch_zip_members(torch))
    p = tmp_path / "polyglot.pt"
    p.write_bytes(EVIL + zipped.read_bytes())
    assert zipfile.is_zipfile(p)  # a zip to Python's zipfile ...
    inv = ckptlint.inspect(p)
    assert inv.format in ("pickle", "torch-legacy")  # ... but torch.load reads it as a pickle, and so do we
    assert {"CK101", "CK107"} <= _codes(p)
    with pytest.raises(pickle.UnpicklingError):  # weights_only=True refuses the payload's global
        _torch_loads(torch, p)
    verdict = check_file(p).verdict
    assert verdict is not None and verdict.loads is False


def test_frame_boundary_disagreement(tmp_path: Path) -> None:
    # FRAME announces 5 bytes, but the BINUNICODE that starts inside it runs past its end.
    # CPython's C unpickler (what pickle.load runs) reads on contiguously; a frame-aware
    # parser would split the opcode. The value is harmless, so the test may load it.
    body = b"X" + struct.pack("<I", 6) + b"hello!" + b"."
    data = b"\x80\x04\x95" + struct.pack("<Q", 5) + body
    assert pickle.loads(data) == "hello!"  # noqa: S301 - a literal string, built above
    p = tmp_path / "frame.pkl"
    p.write_bytes(data)
    inv = ckptlint.inspect(p)
    assert inv.structure == "hello!"
    assert any("FRAME" in a for a in inv.anomalies)
    assert "CK107" in _codes(p)


def test_deflated_members_are_read(torch: ModuleType, tmp_path: Path) -> None:
    members = _torch_zip_members(torch)
    p = tmp_path / "deflated.pt"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    loaded = _torch_loads(torch, p)
    inv = ckptlint.inspect(p)
    assert [t.shape for t in inv.tensors] == [tuple(loaded["w"].shape)]
    assert not inv.anomalies  # deflate is what miniz supports besides stored: nothing to disagree on
