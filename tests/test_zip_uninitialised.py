"""A deflated data.pkl whose stream ends before its declared size: miniz fails silently and torch
unpickles the inflated bytes followed by memory nothing wrote (fuzz seed 402 index 1906: the
oracle met a global spelled by that memory). What torch reads there is unknowable, so the file is
a report naming the uninitialised read, not "unreadable"."""

from __future__ import annotations

import zlib
from pathlib import Path
from types import ModuleType

import ckptlint
from ckptlint.checker import check_file

from zipcraft import Entry, build, entries_of, torch_members


def test_truncated_deflate_data_pkl_is_reported_with_the_uninitialised_read(
        torch: ModuleType, tmp_path: Path) -> None:
    body = b"ccollections\nOrderedDict\n)R."
    cut = body[:20]  # inflates to 20 of the 29 declared bytes: the GLOBAL's name line is left open
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = d.compress(cut) + d.flush(zlib.Z_SYNC_FLUSH)  # no final block: the stream just stops
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "cut.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", body, method=8, raw=raw, size=len(body)), *rest]))
    inv = ckptlint.inspect(p)  # was CheckpointError: pickle truncated at byte 0
    assert any("uninitialised memory" in a for a in inv.anomalies)
    assert inv.stops and inv.stops[0].stream == "archive/data.pkl"
    fr = check_file(p)
    assert fr.error is None
    assert any(f.code == "CK107" and "uninitialised memory" in f.message for f in fr.findings)
