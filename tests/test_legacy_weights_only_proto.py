"""A legacy file whose protocol-version pickle says PROTO 127 (fuzz seed 1 index 19305).

CPython refuses a PROTO above 5, so torch.load(weights_only=False) stops there; torch's
weights_only unpickler only warns and reads the rest of the file: sys_info, the object, the
storage keys. The verdict must judge those streams (``pickle#N#weights_only``), never stop at
the warning and say "loads" for a file whose object it never read."""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType

from ckptlint.checker import check_file

VERSION = b"\x80\x02M\xe9\x03."


def _legacy(torch: ModuleType, obj: object, proto: int) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    assert data.count(VERSION) == 1
    return data.replace(VERSION, b"\x80" + bytes([proto]) + VERSION[2:])


def test_object_after_a_high_proto_is_judged(torch: ModuleType, tmp_path: Path) -> None:
    p = tmp_path / "payload.pt"
    p.write_bytes(_legacy(torch, {"w": torch.ones(2), "hook": print}, 127))
    fr = check_file(p)
    inv = fr.inventory
    assert inv is not None and inv.facts.loaded_streams == ("pickle#0", "pickle#1")  # CPython stops at PROTO 127
    assert inv.facts.extra["weights_only_streams"] == ["pickle#2#weights_only", "pickle#3#weights_only",
                                                       "pickle#4#weights_only"]
    assert fr.verdict is not None and fr.verdict.loads is False  # was True: pickle#3 was never read
    assert any(b.detail == "builtins.print" and b.stream == "pickle#3#weights_only" for b in fr.verdict.blocking)


def test_plain_state_dict_after_a_high_proto_loads(torch: ModuleType, tmp_path: Path) -> None:
    p = tmp_path / "plain.pt"
    p.write_bytes(_legacy(torch, {"w": torch.ones(2)}, 6))
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is True, fr.verdict


def test_wrong_version_behind_a_high_proto_is_refused(torch: ModuleType, tmp_path: Path) -> None:
    p = tmp_path / "version.pt"
    p.write_bytes(_legacy(torch, {"w": torch.ones(2)}, 6).replace(b"M\xe9\x03.", b"M\xe8\x03.", 1))
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False
    assert any("Invalid protocol version: 1000" in b.detail for b in fr.verdict.blocking)
