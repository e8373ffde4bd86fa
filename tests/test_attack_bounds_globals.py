"""Issue #11's whole-file bounds, for what the pickle VM records per opcode: a file of a few dozen kB
that names the same global millions of times (GLOBAL, or STACK_GLOBAL from memoized strings)
must stay under the issue's 1 GiB, as every input of the fuzzer must (checked like
tests/test_attack_bounds.py: the real command line in a child process, its own peak memory).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_attack_bounds import RECORDS, check_in_child, findings

from zipcraft import Entry, build

pytestmark = pytest.mark.integration  # the measured run is a child process

REPEATED: dict[str, bytes] = {
    # GLOBAL os.system, POP: 5 M times (10 M opcodes, half the bound)
    "global": b"\x80\x02" + b"cos\nsystem\n0" * 5_000_000 + b"N.",
    # STACK_GLOBAL of two memoized strings, POP: 4 M times (16 M opcodes)
    "stack_global_from_memo": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94" + b"h\x00h\x01\x930" * 4_000_000 + b"N.",
}


@pytest.mark.parametrize("name", sorted(REPEATED))
def test_a_global_named_millions_of_times_stays_under_1_gib(name: str, tmp_path: Path) -> None:
    p = tmp_path / f"{name}.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", REPEATED[name], method=8), *RECORDS]))
    assert p.stat().st_size < 200_000
    report, code, peak = check_in_child(p)
    assert peak < 1024, f"peak memory {peak:.0f} MB"
    assert code in (1, 2)
    assert any(f["severity"] == "error" and "system" in f["message"] for f in findings(report)), findings(report)
