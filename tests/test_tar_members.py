"""Which tar member torch reads, and what ckptlint says about the ones it does not read."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

import tarcraft as tc
from ckptlint.errors import CheckpointError
from ckptlint.formats import read_inventory


def _tar(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "old.pt"
    p.write_bytes(data)
    return p


def test_a_genuine_sys_info_is_not_a_stream(tmp_path: Path) -> None:
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes(tc.TorchTar().members())))
    assert "sys_info" not in inv.facts.streams
    assert inv.facts.loaded_streams == ("storages#0", "storages#1", "storages#2", "tensors#0", "tensors#1", "pickle")


def test_a_payload_in_sys_info_is_reported_as_never_loaded(tmp_path: Path) -> None:
    t = tc.TorchTar()
    members = [(n, tc.p2(tc.payload("m") + b"0}") if n == "sys_info" else d) for n, d in t.members()]
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes(members)))
    [hit] = [g for g in inv.globals if g.qualname in ("os.system", "posix.system")]
    assert hit.stream == "sys_info"
    assert "sys_info" not in inv.facts.loaded_streams


def test_a_shadowed_copy_is_scanned_and_flagged(tmp_path: Path) -> None:
    t = tc.TorchTar()
    evil = tc.TorchTar(pickle_extra=tc.payload("m")).pickle()
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes([("pickle", evil), *t.members()])))
    [hit] = [g for g in inv.globals if g.qualname in ("os.system", "posix.system")]
    assert hit.stream == "pickle#shadowed0"
    assert hit.stream not in inv.facts.loaded_streams
    assert any("appears more than once" in a for a in inv.anomalies)


def test_a_tar_without_storages_is_unreadable_with_torchs_reason(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"KeyError.*storages"):
        read_inventory(_tar(tmp_path, tc.tar_bytes([("readme.txt", b"hello")])))


@pytest.mark.parametrize("linkname", ["/home/user/.cache/payload.bin", "../../payload.bin"])
def test_storages_linked_out_of_the_archive_is_an_error_not_unreadable(tmp_path: Path, linkname: str) -> None:
    """torch opens the link in its temporary folder and reads whatever file of the loading machine it reaches."""
    t = tc.TorchTar()
    members = b"".join(tc.member_bytes(n, d) for n, d in t.members() if n != "storages")
    odd = tc.member_bytes("storages", b"", linkname=linkname, type=tarfile.SYMTYPE)
    inv = read_inventory(_tar(tmp_path, members + odd + tc.end_blocks()))
    assert any("outside the archive" in a and linkname in a for a in inv.anomalies)
    assert [s.stream for s in inv.stops] == ["tar"]


@pytest.mark.parametrize(("kind", "linkname", "reason"), [
    (tarfile.LNKTYPE, "missing", "not in the archive"),
    (tarfile.SYMTYPE, "payload.bin", "does not hold"),
    (tarfile.DIRTYPE, "", "directory"),
    (tarfile.FIFOTYPE, "", "fifo"),
])
def test_storages_that_is_no_file_of_the_archive(tmp_path: Path, kind: bytes, linkname: str, reason: str) -> None:
    t = tc.TorchTar()
    members = b"".join(tc.member_bytes(n, d) for n, d in t.members() if n != "storages")
    odd = tc.member_bytes("storages", b"", linkname=linkname, type=kind)
    with pytest.raises(CheckpointError, match=reason):
        read_inventory(_tar(tmp_path, members + odd + tc.end_blocks()))


def test_tensors_linked_to_storages_reads_the_extracted_storages(tmp_path: Path) -> None:
    """tar.extract makes the link in torch's temporary folder, where storages already is."""
    t = tc.TorchTar(tensors={})
    members = b"".join(tc.member_bytes(n, d) for n, d in t.members() if n != "tensors")
    link = tc.member_bytes("tensors", b"", linkname="storages", type=tarfile.SYMTYPE)
    inv = read_inventory(_tar(tmp_path, members + link + tc.end_blocks()))
    assert inv.facts.loaded_streams == ("storages#0", "storages#1", "tensors#0", "pickle")
    assert not inv.stops


def test_pickle_load_reads_the_first_header(tmp_path: Path) -> None:
    """A tar whose first member name is a pickle: torch reads the tar, ``pickle.load`` runs the header."""
    t = tc.TorchTar()
    first = tc.member_bytes("cos\nsystem\n(S'touch m'\ntR.", b"")
    inv = read_inventory(_tar(tmp_path, first + tc.tar_bytes(t.members())))
    [hit] = [g for g in inv.globals if g.qualname in ("os.system", "posix.system")]
    assert hit.stream == "pickle#0"
    assert "pickle#0" not in inv.facts.loaded_streams
    assert "pickle" in inv.facts.loaded_streams


MODULE_PIDS = {  # the pickled persistent id tuple -> whether torch gets past it
    "one item: pid[1:] is empty, all() is true, one argument": (b"(" + tc.glob("mod", "Cls") + b"t", False),
    "three items, all true": (b"(" + tc.glob("mod", "Cls") + tc.uni("f.py") + tc.uni("src") + b"t", True),
    "two items, all true": (b"(" + tc.glob("mod", "Cls") + tc.uni("f.py") + b"t", False),
    "four items, one false: no check": (b"(" + tc.glob("mod", "Cls") + tc.uni("f.py") + tc.uni("") + tc.uni("x") + b"t",
                                        True),
}


def module_pid_tar(pid: bytes) -> bytes:
    body = b"}" + tc.uni("m") + pid + b"Qs" + tc.reduce_call("mod_after", "f") + b"0"
    return tc.tar_bytes([(n, tc.p2(body) if n == "pickle" else d) for n, d in tc.TorchTar().members()])


@pytest.mark.parametrize("case", list(MODULE_PIDS))
def test_module_persistent_ids_follow_torchs_source_check(tmp_path: Path, case: str) -> None:
    """``_check_container_source(*pid)`` runs when ``pid[1:]`` is all true, and takes exactly three arguments."""
    pid, ok = MODULE_PIDS[case]
    inv = read_inventory(_tar(tmp_path, module_pid_tar(pid)))
    assert ("mod_after.f" in [g.qualname for g in inv.globals]) is ok
    assert bool(inv.stops) is not ok


def test_a_bound_met_in_a_shadowed_copy_keeps_torchs_reading(tmp_path: Path) -> None:
    """fuzz seed 23 index 24309: a shadowed ``pickle`` names a global, then a LONG_BINPUT index past
    ``max_memo_index``. torch reads the last copy, which ckptlint had read completely: that stays the report
    (loaded streams are torch's), and the bound is a stop in the shadowed copy, not a partial report."""
    t = tc.TorchTar()
    shadowed = tc.p2(tc.payload("m") + b"r\x00\x00\x00\x95.")
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes([("pickle", shadowed), *t.members()])))
    assert inv.format == "torch-tar"
    assert inv.facts.loaded_streams == ("storages#0", "storages#1", "storages#2", "tensors#0", "tensors#1", "pickle")
    [hit] = [g for g in inv.globals if g.qualname in ("os.system", "posix.system")]
    assert hit.stream == "pickle#shadowed0"
    assert [(s.stream, s.limit) for s in inv.stops] == [("pickle#shadowed0", "max_memo_index")]


def test_a_bound_met_in_the_pickle_member_keeps_torchs_streams(tmp_path: Path) -> None:
    """fuzz seed 2 index 1464: the first header's name is itself a pickle (``pickle#0``, what pickle.load runs; torch
    reads it only when it falls back) and the loaded ``pickle`` member meets ``max_memo_index``. The report keeps
    torch's loaded streams (the tar members), not every stream as a partial report did."""
    t = tc.TorchTar(pickle_extra=tc.payload("m") + b"r\x00\x00\x00\x950")
    polyglot = "cbuiltins\nprint\n(S'x'\ntR."
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes([(polyglot, b"x"), *t.members()], fmt=tarfile.GNU_FORMAT)))
    assert "pickle#0" in inv.facts.streams
    assert inv.facts.loaded_streams == ("storages#0", "storages#1", "storages#2", "tensors#0", "tensors#1", "pickle")
    assert [(s.stream, s.limit) for s in inv.stops if s.limit] == [("pickle", "max_memo_index")]
    assert {g.qualname for g in inv.globals if g.stream == "pickle"} & {"os.system", "posix.system"}


def test_a_header_that_is_a_pickle_is_what_torch_load_of_a_file_object_runs(tmp_path: Path) -> None:
    """torch.load(io.BytesIO(data)) has no fileno, never tries tarfile and unpickles byte 0 as a legacy file:
    for a tar whose first member name is a pickle, that payload runs (torch.load(path) reads the members)."""
    t = tc.TorchTar()
    inv = read_inventory(_tar(tmp_path, tc.tar_bytes([("cos\nsystem\n(S'x'\ntR.", b"x"), *t.members()],
                                                     fmt=tarfile.GNU_FORMAT)))
    assert "pickle#0" not in inv.facts.loaded_streams
    assert inv.facts.extra["file_object_streams"] == ["pickle#0"]
    assert [g.stream for g in inv.globals if g.qualname in ("os.system", "posix.system")] == ["pickle#0"]
