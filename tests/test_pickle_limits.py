"""Bounds hold for the whole file: work split over many members or streams is charged to one budget,
and going over a bound is a stop that names the Limits field (never a hang, a blow-up or a traceback)."""

from __future__ import annotations

import json
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import ckptlint
from ckptlint import CheckpointError, Limits
from ckptlint.errors import LimitExceeded
from ckptlint.limits import Budget


def _many_member_zip(path: Path, members: int, ops_each: int) -> None:
    body = b"\x80\x02" + b"N0" * (ops_each // 2) + b"N."
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02ccollections\nOrderedDict\n)R.")
        z.writestr("archive/byteorder", "little")
        for i in range(members):
            z.writestr(f"archive/extra{i}.pkl", body)


def test_opcodes_split_across_members_share_one_budget(tmp_path: Path) -> None:
    p = tmp_path / "split.pt"
    _many_member_zip(p, 8, 200_000)  # 1.6 M opcodes in all, each member far under the bound
    inv = ckptlint.inspect(p, limits=Limits(max_opcodes=500_000))
    limited = [s for s in inv.stops if s.limit == "max_opcodes"]
    assert limited, inv.stops
    assert sum(ps.opcodes for ps in inv.pickles) <= 500_000
    # the same file under the default bounds is read completely
    assert not ckptlint.inspect(p).stops


def test_memo_is_charged_per_file(tmp_path: Path) -> None:
    stream = b"\x80\x02]" + b"".join(b"r" + struct.pack("<I", i) for i in range(600)) + b"."
    p = tmp_path / "memo.pkl"
    p.write_bytes(stream + stream)  # the second stream hides after the first STOP
    inv = ckptlint.inspect(p, limits=Limits(max_memo=1000))
    assert [s.limit for s in inv.stops] == ["max_memo"]
    assert ckptlint.inspect(p, limits=Limits(max_memo=1200)).stops == ()


def test_tensor_records_are_bounded(tmp_path: Path, torch: object) -> None:
    import torch as t

    p = tmp_path / "many.pt"
    t.save({f"w{i}": t.zeros(1) for i in range(50)}, p)
    inv = ckptlint.inspect(p, limits=Limits(max_tensors=10))
    assert [s.limit for s in inv.stops] == ["max_tensors"]
    assert len(ckptlint.inspect(p).tensors) == 50


def _safetensors(path: Path, n: int) -> None:
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(n)}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4 * n))


def test_safetensors_entries_refused_before_parsing(tmp_path: Path) -> None:
    p = tmp_path / "wide.safetensors"
    _safetensors(p, 20_000)
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="max_tensors=1000"):
        ckptlint.inspect(p, limits=Limits(max_tensors=1000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * p.stat().st_size  # the header bytes, not a parsed tree of 20 k entries
    assert len(ckptlint.inspect(p).tensors) == 20_000


def test_safetensors_duplicate_key_still_refused(tmp_path: Path) -> None:
    entry = b'{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    raw = b'{"a": ' + entry + b', "a": ' + entry + b"}"
    p = tmp_path / "dup.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    with pytest.raises(CheckpointError, match="repeats the key 'a'"):
        ckptlint.inspect(p)


def test_budget_names_the_field() -> None:
    b = Budget(Limits(max_inflated_bytes=10, max_zip_entries=2))
    b.charge_bytes(10)
    with pytest.raises(LimitExceeded) as ei:
        b.charge_bytes(1, "zip member x")
    assert ei.value.field == "max_inflated_bytes" and "zip member x" in str(ei.value)
    b.charge_members(2)
    with pytest.raises(LimitExceeded, match="max_zip_entries=2"):
        b.charge_members()


def test_stream_count_is_per_file(tmp_path: Path) -> None:
    one = pickle.dumps(1, protocol=2)
    p = tmp_path / "streams.pkl"
    p.write_bytes(one * 50)
    inv = ckptlint.inspect(p, limits=Limits(max_streams=10))
    assert inv.structure == 1
    assert 1 <= len(inv.pickles) <= 10
    assert len(ckptlint.inspect(p).pickles) == 50


def test_a_name_repeated_a_million_times_is_recorded_a_few_times(tmp_path: Path) -> None:
    # GLOBAL os.system, POP, over and over: every occurrence used to be a GlobalRef (a 120 kB zip took 3 GB)
    p = tmp_path / "repeat.pkl"
    p.write_bytes(b"\x80\x02" + b"cos\nsystem\n0" * 200_000 + b"cos\nsystem\n.")
    inv = ckptlint.inspect(p)
    refs = [g for g in inv.globals if g.qualname == "os.system" and g.stream == "pickle#0"]
    assert 1 <= len(refs) <= 8 and refs[0].offset == 2
    assert not [s for s in inv.stops if s.stream == "pickle#0"]


def test_distinct_globals_are_bounded_for_the_whole_file(tmp_path: Path) -> None:
    p = tmp_path / "distinct.pkl"
    p.write_bytes(b"\x80\x02" + b"".join(b"cm%d\nf\n0" % i for i in range(50)) + b"N.")
    inv = ckptlint.inspect(p, limits=Limits(max_globals=20))
    assert [s.limit for s in inv.stops] == ["max_globals"]
    assert len([g for g in inv.globals if g.stream == "pickle#0"]) == 20


_DAG = b")" + b"2\x86" * 45
"""A tuple of 45 DUP'd TUPLE2s: 91 bytes whose hash (and repr) visit 2**45 nodes: hours in CPython."""


@pytest.mark.parametrize("tail", [b"(" + _DAG + b"\x91",  # FROZENSET of it
                                  b"}" + _DAG + b"Ns",  # a dict key
                                  b"\x8f(" + _DAG + b"\x90"])  # ADDITEMS
def test_hashing_a_tuple_dag_is_bounded(tmp_path: Path, tail: bytes) -> None:
    p = tmp_path / "dag.pkl"
    p.write_bytes(b"\x80\x04cos\nsystem\n0" + tail + b".")
    inv = ckptlint.inspect(p)
    assert [s.limit for s in inv.stops if s.stream == "pickle#0"] == ["max_hash_nodes"]
    assert "os.system" in {g.qualname for g in inv.globals}


@pytest.mark.parametrize("call", [b"cbuiltins\nset\n]" + _DAG + b"a\x85R",
                                  b"ccollections\nOrderedDict\n]" + _DAG + b"N\x86a\x85R"])
def test_calls_that_would_hash_a_tuple_dag_stay_records(tmp_path: Path, call: bytes) -> None:
    p = tmp_path / "dag_call.pkl"
    p.write_bytes(b"\x80\x04" + call + b"0cos\nsystem\n.")
    inv = ckptlint.inspect(p)
    assert "os.system" in {g.qualname for g in inv.globals}  # read on, as a superset


def test_a_tuple_dag_in_a_persistent_id_is_printed_briefly(tmp_path: Path) -> None:
    data = (b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\n" + _DAG
            + b"X\x03\x00\x00\x00cpuK\x01tQcos\nsystem\n.")
    p = tmp_path / "pid.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    inv = ckptlint.inspect(p)
    assert all(len(s.reason) < 500 for s in inv.stops)


def test_hashing_a_deeply_nested_tuple_does_not_crash(tmp_path: Path) -> None:
    # 1 M TUPLE1s nest a tuple a million deep: CPython's tuple hash recurses in C without a guard and
    # overflows the stack (a segfault); the machine refuses to hash past 10,000 levels
    p = tmp_path / "deep.pkl"
    p.write_bytes(b"\x80\x04cos\nsystem\n0(" + b")" + b"\x85" * 1_000_000 + b"\x91.")
    inv = ckptlint.inspect(p)
    assert [s.limit for s in inv.stops if s.stream == "pickle#0"] == ["max_hash_nodes"]
    assert "os.system" in {g.qualname for g in inv.globals}
