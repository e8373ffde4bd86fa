"""Cut deflate streams where torch's answer does not depend on the uninitialised memory it reads.

miniz fails silently on a cut stream and torch reads the inflated bytes followed by memory nothing
wrote. Where the inflated part alone decides (a pickle whose STOP was inflated; a record whose
inflated prefix already fails), torch's answer is the same on every run; ckptlint's verdict must be
that answer, with CK107 naming the uninitialised read.
"""

from __future__ import annotations

import pickle
import sys
import warnings
import zlib
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ckptlint.checker import check_file

from zipcraft import Entry, build, entries_of, torch_members


def _cut(body: bytes, keep: int) -> bytes:
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    return d.compress(body[:keep]) + d.flush(zlib.Z_SYNC_FLUSH)


def _archive(path: Path, record: bytes, body: bytes, keep: int) -> Path:
    rest = [e for e in entries_of(torch_members({"x": 0})) if not e.name.endswith(b"/" + record)]
    path.write_bytes(build([*rest, Entry(b"archive/" + record, body, method=8, raw=_cut(body, keep),
                                         size=len(body))]))
    return path


def _torch(path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        return type(e).__name__
    return "loads"


PLAIN = pickle.dumps({"x": 1, "y": [1, 2]}, protocol=2)
CASES = {
    # data.pkl cut after its STOP: the memory after it is never unpickled
    "data.pkl-cut-after-stop": (b"data.pkl", PLAIN + b"\0" * 40, len(PLAIN) + 2, "loads"),
    # the id's inflated bytes are already not UTF-8
    "serialization_id-bad-prefix": (b".data/serialization_id", b"\xff\xfe" + b"0" * 38, 2, "UnicodeDecodeError"),
    # int() of b"x" followed by anything fails
    "storage_alignment-bad-prefix": (b".storage_alignment", b"x4", 1, "ValueError"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_is_torchs_on_every_run(name: str, tmp_path: Path) -> None:
    record, body, keep, expected = CASES[name]
    p = _archive(tmp_path / f"{name}.pt", record, body, keep)
    assert {_torch(p) for _ in range(3)} == {expected}
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is (expected == "loads"), fr.verdict.blocking
    if expected == "loads":  # zipfile refuses the cut stream, torch reads it: the readers disagree
        assert any(f.code == "CK107" and "uninitialised memory" in f.message for f in fr.findings)
    else:  # a refusal the inflated bytes decide: said without "unless" (no luck involved)
        assert fr.inventory is not None
        refuses = fr.inventory.facts.extra["torch_refuses"]
        assert refuses.startswith(expected if expected != "ValueError" else "invalid literal")
        assert "unless" not in refuses
