"""Whole-file bounds on the tar and legacy readers: members, header bytes, streams, sparse maps.

Each file is small; the limits are lowered so the bound is what stops the reading, and the
report names the ``Limits`` field instead of hanging or growing.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import tarcraft as tc
from ckptlint.errors import CheckpointError
from ckptlint.formats import read_inventory
from ckptlint.limits import Limits


def _limit_named(path: Path, limits: Limits, field: str) -> str:
    """The limit must appear either as the unreadable reason or as a stop in the partial report."""
    try:
        inv = read_inventory(path, limits)
    except CheckpointError as e:
        assert field in e.reason, e.reason
        return "unreadable"
    assert any(s.limit == field for s in inv.stops), inv.stops
    return "partial"


def test_member_count_is_bounded(tmp_path: Path) -> None:
    t = tc.TorchTar()
    members = [(f"junk{i}", b"x") for i in range(60)] + t.members()
    p = tmp_path / "many.tar"
    p.write_bytes(tc.tar_bytes(members))
    assert read_inventory(p).format == "torch-tar"  # the default limits read it
    assert _limit_named(p, Limits(max_zip_entries=50), "max_zip_entries") == "unreadable"


def test_header_bytes_are_charged(tmp_path: Path) -> None:
    """A 300 kB PAX header is read by tarfile before any member: the byte budget bounds it."""
    t = tc.TorchTar()
    p = tmp_path / "bigpax.tar"
    p.write_bytes(tc.tar_bytes(t.members(), fmt=2, pax={"sys_info": {"comment": "c" * 300_000}}))
    assert read_inventory(p).format == "torch-tar"
    assert _limit_named(p, Limits(max_inflated_bytes=100_000), "max_inflated_bytes") == "unreadable"


def test_storage_count_cannot_run_streams_forever(tmp_path: Path) -> None:
    """A count of a billion storages, each args pickle present: the stream budget stops it, not the count."""
    one = tc.p2(tc.pint(0) + tc.uni("cpu") + tc.glob("torch", "FloatStorage") + b"\x87") + struct.pack("<q", 0)
    storages = tc.p2(tc.pint(10**9)) + one * 500
    t = tc.TorchTar(tensors={})
    p = tmp_path / "count.tar"
    p.write_bytes(tc.tar_bytes([(n, storages if n == "storages" else d) for n, d in t.members()]))
    assert _limit_named(p, Limits(max_streams=100), "max_streams") == "partial"


def test_sparse_map_entries_are_charged(tmp_path: Path) -> None:
    t = tc.TorchTar()
    chunks = [(i * 2, b"\x80") for i in range(3000)]
    p = tmp_path / "sparse.tar"
    members = [(n, d) for n, d in t.members() if n != "storages"]
    p.write_bytes(tc.tar_bytes(members, end=False) + tc.pax_sparse_member("storages", chunks, 6000) + tc.end_blocks())
    assert _limit_named(p, Limits(max_zip_entries=1000), "max_zip_entries") == "unreadable"


@pytest.mark.parametrize("hole", [10**6, 10**12])
def test_sparse_hole_is_not_materialised(tmp_path: Path, hole: int) -> None:
    """A pickle member that is a terabyte of holes after a few bytes: read as tarfile does, only as far as parsed."""
    t = tc.TorchTar()
    p = tmp_path / "hole.tar"
    members = [(n, d) for n, d in t.members() if n != "pickle"]
    body = t.pickle()
    p.write_bytes(tc.tar_bytes(members, end=False) + tc.pax_sparse_member("pickle", [(0, body)], len(body) + hole)
                  + tc.end_blocks())
    inv = read_inventory(p)
    assert inv.facts.bytes_read < 1_000_000
    assert [tuple(r.path) for r in inv.tensors] == [("w",)]


def test_tar_members_have_their_own_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tarfile parses about 10,000 headers a second: a tar is bounded well below the zip entry bound."""
    from dataclasses import fields

    from ckptlint.formats import tar

    p = tmp_path / "headers.tar"
    p.write_bytes(tc.member_bytes("x", b"") * 80 + tc.tar_bytes(tc.TorchTar().members()))
    if "max_tar_members" in {f.name for f in fields(Limits)}:
        limits = Limits(max_tar_members=50)  # type: ignore[call-arg,unused-ignore]
    else:
        monkeypatch.setattr(tar, "DEFAULT_MAX_TAR_MEMBERS", 50)
        limits = Limits()
    assert _limit_named(p, limits, "max_tar_members") == "unreadable"
