"""CPython runs everything before the point where it fails: so when the static machine stops,
every global and call seen before the stop is still reported, with the stop's reason and offset.

Each file is built the way an attacker would: a payload first, then something that makes the
unpickler raise. The proof that ``pickle.load`` reaches the payload runs in a subprocess."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from _pickle_attack import SYSTEM, g, inspect_and_check, qualnames, reaches, su, system_call, write
from ckptlint import CheckpointError, Limits

pytestmark = pytest.mark.integration  # each proof runs the real loader in a subprocess

TAILS = {
    # a memo key that was never PUT: "Memo value not found at index 7"
    "missing_memo_key": b"h\x07",
    # STACK_GLOBAL whose operands are not str: "STACK_GLOBAL requires str"
    "non_string_stack_global": b"K\x01K\x02\x93",
    # an opcode byte CPython does not know
    "bad_opcode": b"\xff",
    # the file simply ends
    "truncated": b"X\x10\x00\x00\x00abc",
    # STOP with nothing on the stack
    "empty_stop": b"0.",
}


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_payload_before_the_stop_is_reported(tmp_path: Path, tail: str) -> None:
    marker = tmp_path / "ran.marker"
    data = b"\x80\x02" + system_call(marker) + b"0" + TAILS[tail]
    p = write(tmp_path, f"{tail}.pkl", data)
    assert reaches(p, marker), "pickle.load must run the payload before it fails"
    inv, report = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM, inv.globals
    assert report.error is None  # not "unreadable": the payload is the report
    assert {"CK101"} <= {f.code for f in report.findings}
    stops = [s for s in inv.stops if s.stream == "pickle#0"]
    assert len(stops) == 1 and stops[0].offset > data.index(b"tR") and stops[0].reason
    assert report.verdict is not None and report.verdict.loads is False


def test_stop_offset_is_where_cpython_raises(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    head = b"\x80\x02" + system_call(marker) + b"0"
    p = write(tmp_path, "memo.pkl", head + b"h\x07.")
    inv, _ = inspect_and_check(p, marker)
    (stop,) = inv.stops
    assert stop.offset == len(head)
    assert "memo key 7 missing" in stop.reason


def test_protocol0_payload_then_garbage_is_a_pickle_not_text(tmp_path: Path) -> None:
    # All printable ASCII: a sniffer that calls this "a text file" throws the payload away.
    marker = tmp_path / "ran.marker"
    data = system_call(marker, proto0=True) + b"0" + b"g99\n."
    assert data.isascii()
    p = write(tmp_path, "notes.txt", data)
    assert reaches(p, marker)
    inv, report = inspect_and_check(p, marker)
    assert inv.format == "pickle" and qualnames(inv) & SYSTEM
    assert report.format != "text" and report.error is None


def test_opcode_bound_keeps_the_payload(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    data = b"\x80\x02" + system_call(marker) + b"0" + b"N0" * 5000 + b"N."
    p = write(tmp_path, "long.pkl", data)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker, limits=Limits(max_opcodes=1000))
    assert qualnames(inv) & SYSTEM
    assert [s.limit for s in inv.stops] == ["max_opcodes"]


def test_stop_without_any_global_is_still_unreadable(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.pkl", b"\x80\x02]h\x07.")
    with pytest.raises(CheckpointError) as ei:
        inspect_and_check(p, tmp_path / "none")
    assert "memo key 7 missing" in ei.value.reason and "byte 3" in ei.value.reason


def _torch_zip(path: Path, data_pkl: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")


def test_zip_payload_then_missing_memo_key(tmp_path: Path) -> None:
    # torch.load(weights_only=False) unpickles data.pkl with the C unpickler: the payload runs,
    # then the missing memo key raises.
    marker = tmp_path / "ran.marker"
    p = tmp_path / "model.pt"
    _torch_zip(p, b"\x80\x02" + system_call(marker) + b"0" + b"h\x09.")
    assert reaches(p, marker, loader="torch")
    inv, report = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM
    assert any(s.stream == "archive/data.pkl" for s in inv.stops)
    assert report.verdict is not None and report.verdict.loads is False


def test_stack_global_after_payload_names_the_first(tmp_path: Path) -> None:
    # Two payloads; the second STACK_GLOBAL is malformed. Only the first ran, and it is named.
    marker = tmp_path / "ran.marker"
    data = (b"\x80\x04" + su("os") + su("system") + b"\x93" + su(f"touch {marker}") + b"\x85R0"
            + g("builtins", "eval") + b"0" + b"N" + su("x") + b"\x93.")
    p = write(tmp_path, "two.pkl", data)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert {"os.system", "builtins.eval"} <= qualnames(inv)
    (stop,) = inv.stops
    assert "STACK_GLOBAL" in stop.reason and stop.offset == len(data) - 2
