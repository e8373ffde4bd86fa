"""Legacy files with a PROTO above 5 in an early pickle: ckptlint's verdict against torch.load(weights_only=True).

torch's weights_only unpickler warns on such a PROTO and reads on (CPython raises); what the rest
of the file holds decides (fuzz seed 1 index 19305)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch

from ckptlint.checker import check_file

VERSION = b"\x80\x02M\xe9\x03."
MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
SYS_INFO = b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_version"


def _torch_loads(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - any refusal is a "no"
        return False
    return True


CASES = {
    "version-proto6": ({"w": torch.ones(3)}, [(VERSION, b"\x80\x06M\xe9\x03.")]),
    "version-proto127": ({"w": torch.ones(3), "n": 1}, [(VERSION, b"\x80\x7fM\xe9\x03.")]),
    "version-proto6-wrong-value": ({"w": torch.ones(3)}, [(VERSION, b"\x80\x06M\xe8\x03.")]),
    "version-proto6-payload": ({"w": torch.ones(3), "f": print}, [(VERSION, b"\x80\x06M\xe9\x03.")]),
    "sys-info-proto9": ({"w": torch.ones(3)}, [(SYS_INFO, b"\x80\x09" + SYS_INFO[2:])]),
    "sys-info-proto9-payload": ({"f": len}, [(SYS_INFO, b"\x80\x09" + SYS_INFO[2:])]),
    "both-proto6": ({"w": torch.ones(3)}, [(VERSION, b"\x80\x06M\xe9\x03."), (SYS_INFO, b"\x80\x06" + SYS_INFO[2:])]),
    # the magic number pickle itself (fuzz seed 41 index 190): CPython stops at byte 0, torch's weights_only reads on
    "magic-proto18": ({"w": torch.ones(3)}, [(MAGIC, b"\x80\x12" + MAGIC[2:])]),
    "magic-proto18-payload": ({"w": torch.ones(3), "f": print}, [(MAGIC, b"\x80\x12" + MAGIC[2:])]),
    "magic-proto18-untyped": ({"w": torch.ones(3, dtype=torch.uint16)}, [(MAGIC, b"\x80\x12" + MAGIC[2:])]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_is_torchs(name: str, tmp_path: Path) -> None:
    obj, edits = CASES[name]
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    for old, new in edits:
        assert data.count(old) == 1
        data = data.replace(old, new)
    p = tmp_path / f"{name}.pt"
    p.write_bytes(data)
    fr = check_file(p)
    assert fr.verdict is not None
    assert fr.verdict.loads == _torch_loads(p), fr.verdict.blocking
