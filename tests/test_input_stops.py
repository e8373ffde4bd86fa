"""CK903/CK904: a bound or a broken opcode stops the reading; what ran before is still reported.

Torch-free: the payloads are hand-built pickles that are never loaded here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ckptlint
from ckptlint.checker import check_file
from ckptlint.limits import DEFAULT_LIMITS
from ckptlint.results import FileReport, Report

PAYLOAD = b"\x80\x02cos\nsystem\nq\x00"


def codes(fr: FileReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in fr.findings:
        out.setdefault(f.code, []).append(f.message)
    return out


def write(tmp_path: Path, data: bytes, name: str = "x.pkl") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_a_bound_is_ck903_naming_it_and_the_payload_before_it_is_reported(tmp_path: Path) -> None:
    p = write(tmp_path, PAYLOAD + b"N0" * 5000 + b"(X\x05\x00\x00\x00touchtR0}.")
    fr = check_file(p, limits=dataclasses.replace(DEFAULT_LIMITS, max_opcodes=1000))
    found = codes(fr)
    assert fr.error is None
    assert "os.system" in " ".join(found["CK101"])
    assert len(found["CK903"]) == 1 and "max_opcodes" in found["CK903"][0]
    assert "CK904" not in found  # a bound is ckptlint's, not a place where CPython raises
    assert fr.verdict is not None and fr.verdict.loads is False


def test_the_ck903_fix_line_runs_and_a_higher_bound_reads_the_whole_stream(tmp_path: Path) -> None:
    p = write(tmp_path, PAYLOAD + b"N0" * 5000 + b"(X\x05\x00\x00\x00touchtR0}.")
    fr = check_file(p, limits=dataclasses.replace(DEFAULT_LIMITS, max_opcodes=1000))
    fix = next(f.fix for f in fr.findings if f.code == "CK903")
    assert fix is not None
    code = fix.split(": ", 1)[1].replace("...", "100_000").replace("path", repr(str(p)))
    scope: dict[str, object] = {"dataclasses": dataclasses, "ckptlint": ckptlint}
    exec(f"report = {code}", scope)  # noqa: S102 - the advice as printed, with a number filled in
    report = scope["report"]
    assert isinstance(report, Report)
    assert [f.code for f in report.files[0].findings if f.code.startswith("CK9")] == []


def test_a_missing_memo_key_after_the_payload_is_ck904_and_no_trailing_bytes_anomaly(tmp_path: Path) -> None:
    p = write(tmp_path, PAYLOAD + b"h\x05.")
    fr = check_file(p)
    found = codes(fr)
    assert fr.error is None
    assert "os.system" in " ".join(found["CK101"])
    assert len(found["CK904"]) == 1 and "memo" in found["CK904"][0]
    assert "CK107" not in found, found.get("CK107")  # the bytes after a stop do not follow a STOP
    assert "CK903" not in found


def test_a_bound_that_leaves_nothing_readable_is_ck903_with_the_file_error(tmp_path: Path) -> None:
    p = write(tmp_path, b"\x80\x02" + b"N0" * 5000 + b"N.")
    fr = check_file(p, limits=dataclasses.replace(DEFAULT_LIMITS, max_opcodes=100))
    assert fr.error is not None and "max_opcodes" in fr.error
    assert [f.code for f in fr.findings] == ["CK903"]


def test_a_clean_pickle_has_no_stop_findings(tmp_path: Path) -> None:
    p = write(tmp_path, b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.")
    fr = check_file(p)
    assert not [f for f in fr.findings if f.code in ("CK903", "CK904")]


def test_the_stop_codes_are_declared_with_their_severities() -> None:
    from ckptlint.plugin.manager import all_rules

    rules = all_rules()
    assert rules["CK903"].severity == "error" and rules["CK904"].severity == "warning"
