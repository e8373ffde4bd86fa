"""Issue #11's whole-file bounds for distinct names: a file of under 0.5 MB that names just under
``Limits.max_globals`` different globals (each one unknown: ``m<i>.X``) must stay under the issue's
1 GiB, report included (199 k of them made a 1.2 GB JSON / 1.6 GB SARIF report: audit A5). Checked
like tests/test_attack_bounds.py: the real command line in a child process, its own peak memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptlint.limits import DEFAULT_LIMITS
from test_attack_bounds import RECORDS, check_in_child, findings

from zipcraft import Entry, build

pytestmark = pytest.mark.integration  # the measured run is a child process


@pytest.mark.parametrize("fmt", ["json", "sarif"])  # SARIF is the largest report per finding
def test_distinct_unknown_globals_up_to_the_bound_stay_under_1_gib(tmp_path: Path, fmt: str) -> None:
    n = DEFAULT_LIMITS.max_globals - 1_000
    data = b"\x80\x02" + b"".join(b"cm%d\nX\n0" % i for i in range(n)) + b"N."
    p = tmp_path / "distinct.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", data, method=8), *RECORDS]))
    del data
    assert p.stat().st_size < 1 << 20
    report, code, peak = check_in_child(p, fmt)
    assert peak < 1024, f"peak memory {peak:.0f} MB"
    assert code in (1, 2)
    if fmt == "json":
        assert any(f["severity"] == "error" for f in findings(report))
    else:
        assert report["runs"][0]["results"]
