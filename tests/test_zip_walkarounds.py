"""Zip tricks that walked past ckptlint: each file is built as an attacker builds it, a throwaway
``torch.load(weights_only=False)`` proves by a marker file that torch reaches the payload, and
ckptlint must report the payload in the stream torch loads (and the reader disagreement).

The payload only creates the marker file (``builtins.open(marker, 'w')``).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ckptlint
from ckptlint.checker import check_file
from ckptlint.formats.zipreader import ZipArchive

from zipcraft import Craft, Entry, build, entries_of, marker_pickle, torch_members, value_pickle

LOAD = "import sys, torch; torch.load(sys.argv[1], weights_only=False)"


def _reaches_payload(run_python: Callable[..., Any], path: Path, marker: Path) -> None:
    assert not marker.exists()
    run_python("-c", LOAD, path)  # it may raise after the payload ran; the marker is the proof
    assert marker.exists(), f"torch.load never reached the payload in {path.name}"


def _reported(path: Path) -> set[str]:
    """ckptlint names builtins.open in a stream torch loads, at error level; returns the finding codes."""
    inv = ckptlint.inspect(path)
    loaded = set(inv.facts.loaded_streams)
    assert any(g.qualname == "builtins.open" and g.stream in loaded for g in inv.globals), (
        inv.facts.loaded_streams, [(g.qualname, g.stream) for g in inv.globals])
    fr = check_file(path)
    assert any(f.severity == "error" and "builtins.open" in f.message for f in fr.findings)
    assert fr.verdict is not None and fr.verdict.loads is False
    return {f.code for f in fr.findings}


def _rest(torch: ModuleType) -> tuple[Entry, list[Entry]]:
    es = entries_of(torch_members())
    return next(e for e in es if e.name.endswith(b"/data.pkl")), [e for e in es if not e.name.endswith(b"/data.pkl")]


def test_zip64_locator_to_a_second_central_directory(torch: ModuleType, run_python: Callable[..., Any],
                                                     tmp_path: Path) -> None:
    # The classic end record points at a clean directory; a ZIP64 end record (found through its
    # locator, though no classic field overflows) at a second one whose data.pkl is the payload.
    marker = tmp_path / "zip64.marker"
    clean, rest = _rest(torch)
    evil = Entry(b"archive/data.pkl", marker_pickle(str(marker)))
    c = Craft()
    for e in [clean, evil, *rest]:
        c.local(e)
    cd_clean = c.central([clean, *rest])
    cd_evil = c.central([evil, *rest])
    c.locator(c.eocd64(cd_evil, 1 + len(rest)))
    c.eocd(cd_clean, 1 + len(rest))
    p = tmp_path / "zip64.pt"
    p.write_bytes(c.bytes())
    _reaches_payload(run_python, p, marker)
    _reported(p)


def test_case_folded_name_wins_the_lookup(torch: ModuleType, run_python: Callable[..., Any],
                                          tmp_path: Path) -> None:
    # miniz compares names ignoring ASCII case: DATA.PKL is what torch reads for data.pkl
    # (zipfile, and the old ckptlint, read the lowercase one).
    marker = tmp_path / "case.marker"
    clean, rest = _rest(torch)
    p = tmp_path / "case.pt"
    p.write_bytes(build([clean, Entry(b"archive/DATA.PKL", marker_pickle(str(marker))), *rest]))
    with zipfile.ZipFile(p) as z:
        assert z.read("archive/data.pkl") == clean.data  # what a zipfile-based scanner looks at
    _reaches_payload(run_python, p, marker)
    codes = _reported(p)
    assert "CK107" in codes


def _middle_duplicate(others: list[bytes]) -> tuple[list[bytes], int]:
    """A directory where miniz's heap sort + binary search land on neither the first nor the last
    of several same-named entries; returns the names in directory order and the index it lands on."""
    for n in range(3, 12):
        names = [b"archive/data.pkl"] * n + others
        z = ZipArchive(*_reader(build([Entry(nm, b"x") for nm in names])))
        pick = z.locate(b"archive/data.pkl")
        assert pick is not None
        if 0 < pick.index < n - 1:
            return names, pick.index
    raise AssertionError("no directory puts torch's pick in the middle")


def _reader(data: bytes) -> tuple[Callable[[int, int], bytes], int]:
    return (lambda o, k: data[o:o + k]), len(data)


def test_duplicate_names_torch_reads_the_copy_the_binary_search_finds(
        torch: ModuleType, run_python: Callable[..., Any], tmp_path: Path) -> None:
    marker = tmp_path / "dup.marker"
    clean, rest = _rest(torch)
    names, pick = _middle_duplicate([e.name for e in rest])
    entries = []
    for i, nm in enumerate(names):
        if nm == b"archive/data.pkl":
            entries.append(Entry(nm, marker_pickle(str(marker)) if i == pick else clean.data))
    entries += rest
    p = tmp_path / "dup.pt"
    p.write_bytes(build(entries))
    _reaches_payload(run_python, p, marker)
    inv = ckptlint.inspect(p)
    assert inv.facts.loaded_streams == (f"archive/data.pkl@{entries[pick].offset}",)
    hidden = [s for s in inv.facts.streams if s not in inv.facts.loaded_streams]
    # the other copies are scanned, as streams torch never loads
    assert len(hidden) == names.count(b"archive/data.pkl") - 1
    codes = _reported(p)
    assert {"CK106", "CK107"} <= codes


def test_trailing_end_signature_is_read_like_torch(torch: ModuleType, run_python: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    # A final "PK\x05\x06" with less than 22 bytes after it: zipfile gives up ("not a zip file"),
    # miniz steps over it to the real end record.
    marker = tmp_path / "trail.marker"
    _, rest = _rest(torch)
    p = tmp_path / "trail.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", marker_pickle(str(marker))), *rest], trailing=b"PK\x05\x06\0"))
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(p)
    _reaches_payload(run_python, p, marker)
    assert "CK107" in _reported(p)


def test_payload_before_a_corrupt_deflate_tail(torch: ModuleType, run_python: Callable[..., Any],
                                               tmp_path: Path) -> None:
    # data.pkl is deflated; its stream breaks after the payload's bytes. miniz reports no error,
    # torch unpickles what was inflated (the pickle ends before the damage); zlib raises.
    import zlib

    marker = tmp_path / "deflate.marker"
    _, rest = _rest(torch)
    payload = marker_pickle(str(marker))
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    good = co.compress(payload) + co.flush(zlib.Z_FULL_FLUSH)
    raw = good + b"\xff\xff\xff\xff" * 8
    p = tmp_path / "deflate.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", payload + b"\0" * 64, method=8, raw=raw), *rest]))
    with zipfile.ZipFile(p) as z, pytest.raises(zlib.error):
        z.read("archive/data.pkl")
    _reaches_payload(run_python, p, marker)
    inv = ckptlint.inspect(p)
    assert any("corrupt deflate stream" in a for a in inv.anomalies)
    _reported(p)


def test_corrupt_deflate_is_a_finding_not_a_crash(torch: ModuleType, tmp_path: Path, cli: Any) -> None:
    clean, rest = _rest(torch)
    p = tmp_path / "broken.pt"
    p.write_bytes(build([Entry(b"archive/extra.pkl", b"x" * 100, method=8, raw=b"\xff" * 40), clean, *rest]))
    inv = ckptlint.inspect(p)
    assert inv.facts.loaded_streams == ("archive/data.pkl",)
    fr = check_file(p)
    assert fr.error is None
    result = cli("check", str(p), "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert "corrupt deflate stream" in json.dumps(report)


def test_local_header_name_differs(torch: ModuleType, run_python: Callable[..., Any], tmp_path: Path) -> None:
    # miniz reads data at the local header offset + the *local* name and extra lengths and never
    # compares the names; zipfile refuses the member.
    marker = tmp_path / "local.marker"
    _, rest = _rest(torch)
    evil = Entry(b"archive/data.pkl", marker_pickle(str(marker)), local_name=b"archive/readme.txt.....",
                 local_extra=b"\x00" * 12)
    p = tmp_path / "local.pt"
    p.write_bytes(build([evil, *rest]))
    with zipfile.ZipFile(p) as z, pytest.raises(zipfile.BadZipFile):
        z.read("archive/data.pkl")
    _reaches_payload(run_python, p, marker)
    assert "CK107" in _reported(p)


def test_torch_refuses_what_zipfile_reads(torch: ModuleType, tmp_path: Path) -> None:
    # No version record: torch.load refuses the archive before unpickling; zipfile reads the
    # payload. The verdict is definite (torch's reason) and the payload is still named.
    _, rest = _rest(torch)
    p = tmp_path / "noversion.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", marker_pickle(str(tmp_path / "never"))),
                         *[e for e in rest if not e.name.endswith(b"/version")]]))
    with pytest.raises(RuntimeError, match="version"):
        torch.load(p, weights_only=True)
    inv = ckptlint.inspect(p)
    assert "version" in inv.facts.extra["torch_refuses"]
    assert inv.facts.loaded_streams == ()
    assert any(g.qualname == "builtins.open" for g in inv.globals)
    assert any("Python's zipfile reads it" in n for n in inv.notes)
    fr = check_file(p)
    # torch loads nothing: no reader disagreement about loaded content (CK107), but the payload
    # zipfile would hand to a pickle loader is an error of its own
    assert any(f.severity == "error" and "builtins.open" in f.message for f in fr.findings)
    assert fr.verdict is not None and fr.verdict.loads is False


def test_a_value_pickle_decoy_is_not_what_torch_reads(torch: ModuleType, tmp_path: Path) -> None:
    # Sanity for the oracle above: two copies, torch's pick is the structure ckptlint reports.
    _, rest = _rest(torch)
    p = tmp_path / "decoy.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", value_pickle({"copy": 0})),
                         Entry(b"archive/Data.pkl", value_pickle({"copy": 1})), *rest]))
    loaded = torch.load(p, weights_only=True)
    assert ckptlint.inspect(p).structure == loaded


def _pid_then_payload(marker: Path) -> bytes:
    """A pickle that loads storage ``0`` (persistent id), then runs the marker payload."""
    m = str(marker).encode()
    return (b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ0"
            b"cbuiltins\nopen\nX" + len(m).to_bytes(4, "little") + m + b"X\x01\x00\x00\x00w\x86R.")


@pytest.mark.parametrize("record_present", [True, False])
def test_a_missing_tensor_record_stops_unpickling_where_torch_stops(
        torch: ModuleType, run_python: Callable[..., Any], tmp_path: Path, record_present: bool) -> None:
    # torch reads data/<key> when the pickle first names it: a missing record raises there, and
    # nothing after it runs. ckptlint must not call a payload after that point loaded, nor miss
    # it when the record is there.
    marker = tmp_path / "pid.marker"
    _, rest = _rest(torch)
    rest = [e for e in rest if not e.name.startswith(b"archive/data/")]
    if record_present:
        rest.append(Entry(b"archive/data/0", b"\0" * 4))
    p = tmp_path / "pid.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", _pid_then_payload(marker)), *rest]))
    run_python("-c", LOAD, p)
    assert marker.exists() is record_present
    if record_present:
        _reported(p)
        return
    inv = ckptlint.inspect(p)
    assert not any(g.qualname == "builtins.open" for g in inv.globals)
    assert any("data/0" in s.reason for s in inv.stops)
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False


def test_serialization_id_that_is_not_utf8(torch: ModuleType, run_python: Callable[..., Any],
                                           tmp_path: Path) -> None:
    # torch decodes .data/serialization_id only after unpickling: the payload has run, then
    # torch.load raises. The stream is loaded, and the verdict is "does not load".
    marker = tmp_path / "sid.marker"
    _, rest = _rest(torch)
    for e in rest:
        if e.name.endswith(b"/serialization_id"):
            e.data = b"\xff" * 40
    p = tmp_path / "sid.pt"
    p.write_bytes(build([Entry(b"archive/data.pkl", marker_pickle(str(marker))), *rest]))
    _reaches_payload(run_python, p, marker)
    _reported(p)
    assert "serialization_id" in ckptlint.inspect(p).facts.extra["torch_refuses"]


def test_prepended_data_moves_zipfile_not_torch(torch: ModuleType, tmp_path: Path) -> None:
    # zipfile shifts every offset by the bytes found before the central directory ("concat");
    # miniz does not, so torch refuses what zipfile reads. The payload zipfile would hand to a
    # pickle loader is still named, as a stream torch never loads.
    _, rest = _rest(torch)
    body = build([Entry(b"archive/data.pkl", marker_pickle(str(tmp_path / "never"))), *rest])
    p = tmp_path / "prepended.pt"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 60 + body)
    with pytest.raises(RuntimeError, match="PytorchStreamReader"):
        torch.load(p, weights_only=True)
    with zipfile.ZipFile(p) as z:
        assert b"builtins" in z.read("archive/data.pkl")
    inv = ckptlint.inspect(p)
    assert "PytorchStreamReader failed reading zip archive" in inv.facts.extra["torch_refuses"]
    assert inv.facts.loaded_streams == ()
    assert any(g.qualname == "builtins.open" for g in inv.globals)
    fr = check_file(p)
    assert any(f.severity == "error" and "builtins.open" in f.message for f in fr.findings)
    assert "CK106" in {f.code for f in fr.findings}
    assert fr.verdict is not None and fr.verdict.loads is False
