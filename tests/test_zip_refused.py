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


def test_proto6_data_pkl_is_a_report_judged_by_the_weights_only_reading(torch: ModuleType, tmp_path: Path) -> None:
    # CPython's pickle (torch.load(weights_only=False)) refuses PROTO 6 before any global; torch's pure-Python
    # weights_only unpickler only warns and loads the dict: the file is a report, not unreadable
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "proto6.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", b"\x80\x06}K\x01K\x02s."), *rest]))
    with pytest.raises(ValueError, match="unsupported pickle protocol"):
        torch.load(p, weights_only=False)
    with pytest.warns(UserWarning, match="protocol 6"):
        assert torch.load(p, weights_only=True) == {1: 2}
    inv = ckptlint.inspect(p)  # was CheckpointError: unsupported pickle protocol 6
    assert "archive/data.pkl#weights_only" in inv.facts.streams
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is True


def test_bound_met_in_a_pickle_torch_never_loads_keeps_torchs_reading(torch: ModuleType, tmp_path: Path) -> None:
    """fuzz seed 21 index 10085: torch refuses the archive (an entry outside its ``archive/`` folder); scanning that
    entry, a LONG_BINPUT index past ``max_memo_index`` stops ckptlint. What torch.load does was known before the
    scan: the report keeps it (nothing loaded, torch's refusal) and names the bound, instead of a partial report
    that counted every stream as loaded."""
    rest = [e for e in entries_of(torch_members()) if not e.name.endswith(b"/data.pkl")]
    p = tmp_path / "bound.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", b"\x80\x02ccollections\nOrderedDict\n)R."), *rest,
                         Entry(b"ARCHIVE/DATA.PKL", b"\x80\x02}r\x00\x00\x00\x95.")]))
    with pytest.raises(RuntimeError, match="not in a subdirectory"):
        torch.load(p, weights_only=True)
    fr = check_file(p)
    assert fr.inventory is not None  # was only FileReport.partial
    assert fr.inventory.facts.loaded_streams == ()
    assert "not in a subdirectory" in fr.inventory.facts.extra["torch_refuses"]
    assert any(s.limit == "max_memo_index" for s in fr.inventory.stops)
    assert any(f.code == "CK903" for f in fr.findings)
    assert fr.verdict is not None and fr.verdict.loads is False
