"""torch itself reads a legacy file whose first 512 bytes are a tar header in two ways: ``torch.load(path)``
takes the tar path, ``torch.load(io.BytesIO(data))`` the legacy pickles from byte 0. Proof by a marker file
(harmless payload, a throwaway process) that only the file-object load reaches the payload, and that
ckptlint names it as reached by that load."""

from __future__ import annotations

import sys
from pathlib import Path

import tarcraft as tc
from ckptlint.formats import read_inventory
from fuzz.gen_legacy import ustar_sys_info

from conftest import python_process

_LOAD = """
import io, sys, torch
path, how = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
try:
    torch.load(io.BytesIO(data) if how == "bytesio" else path, weights_only=False)
except Exception as e:
    print(type(e).__name__)
"""


def _polyglot(marker: Path) -> bytes:
    name = str(marker).encode()
    body = b"cbuiltins\nopen\n(X" + len(name).to_bytes(4, "little") + name + b"X\x01\x00\x00\x00wtR"
    prefix = tc.p2(tc.pint(tc.MAGIC)) + tc.p2(tc.pint(1001))
    return tc.legacy_file(body, sys_info=ustar_sys_info(prefix, valid_checksum=True))


def test_only_the_file_object_load_reaches_the_payload_and_ckptlint_names_it(tmp_path: Path) -> None:
    marker = tmp_path / "reached"
    p = tmp_path / "poly.pt"
    p.write_bytes(_polyglot(marker))
    script = tmp_path / "load.py"
    script.write_text(_LOAD)
    python_process(script, p, "path", cwd=tmp_path)
    assert not marker.exists()  # torch.load(path): the tar path, which fails first
    python_process(script, p, "bytesio", cwd=tmp_path)
    assert marker.exists()  # torch.load(io.BytesIO(data)): the legacy pickles, payload included
    inv = read_inventory(p)
    opened = [g for g in inv.globals if g.qualname == "builtins.open"]
    assert opened and opened[0].stream in inv.facts.extra["file_object_streams"], (inv.globals, sys.argv)
