"""A zip torch refuses (no ``version`` record) holding only a pickle that stops before any global:
torch.load unpickles nothing, so the stop in the hidden pickle is no reason to call the file
unreadable; it is a report whose verdict is torch's refusal."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from ckptlint.checker import check_file

from zipcraft import Entry, build, entries_of, torch_members


def test_refused_zip_with_a_truncated_hidden_pickle_is_a_report(torch: ModuleType, tmp_path: Path) -> None:
    rest = [e for e in entries_of(torch_members())
            if not e.name.endswith((b"/data.pkl", b"/version"))]
    p = tmp_path / "refused.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", b"\x80\x02}q\x00(X\x01"), *rest]))
    with pytest.raises(RuntimeError, match="version"):
        torch.load(p, weights_only=True)
    inv = ckptlint.inspect(p)  # was CheckpointError: "pickle truncated"
    assert inv.facts.loaded_streams == ()
    assert "version" in inv.facts.extra["torch_refuses"]
    assert inv.stops and "truncated" in inv.stops[0].reason
    fr = check_file(p)
    assert fr.inventory is not None
    assert fr.verdict is not None and fr.verdict.loads is False
