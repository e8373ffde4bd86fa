"""Constructs CPython's C unpickler accepts, read the way it reads them (Modules/_pickle.c).

Each malicious file hides its payload behind a construct an unfaithful reader gives up on; the
proof that the real loader gets past it runs in a subprocess."""

from __future__ import annotations

import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import ckptlint
from _pickle_attack import SYSTEM, g, inspect_and_check, qualnames, reaches, s0, su, system_call, write
from ckptlint import CheckpointError
from ckptlint.inventory import StreamStop

pytestmark = pytest.mark.integration  # each proof runs the real loader in a subprocess


def stops0(inv: ckptlint.Inventory) -> list[StreamStop]:
    """Stops in the stream pickle.load reads (torch's reader may go on to further streams)."""
    return [s for s in inv.stops if s.stream == "pickle#0"]


@pytest.mark.parametrize("state", [b"N", b"N}\x86"])
def test_build_on_a_set_with_no_state(tmp_path: Path, state: bytes) -> None:
    # load_build: no __setstate__, a None state and a None/empty slot state are no-ops
    marker = tmp_path / "ran.marker"
    data = b"\x80\x02\x8f" + state + b"b0" + system_call(marker) + b"."
    p = write(tmp_path, "set.pkl", data)
    assert reaches(p, marker)
    inv, report = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM and not stops0(inv)
    assert "CK101" in {f.code for f in report.findings}


@pytest.mark.parametrize("target,state", [(b"\x8f", b"}"), (b"]", b"}"), (b"N", b")"), (b"\x8f", b"NN\x86"),
                                          (b"]", b"N}K\x01K\x02s\x86")])
def test_build_cpython_refuses_stops_there_too(tmp_path: Path, target: bytes, state: bytes) -> None:
    # a builtin value has no __dict__ to update: CPython raises, and the payload after it never runs
    marker = tmp_path / "ran.marker"
    data = b"\x80\x02" + target + state + b"b0" + system_call(marker) + b"."
    p = write(tmp_path, "build.pkl", data)
    assert not reaches(p, marker)
    with pytest.raises(CheckpointError, match="BUILD"):
        ckptlint.inspect(p)


def test_protocol0_int_literals_parse_like_strtol(tmp_path: Path) -> None:
    lines = [b"01751", b"01", b"00", b"+1", b" 7", b"0x1f", b"-010", b"1_000", b"0o17", b"0b11",
             b"12\x00junk", b"-0"]
    data = b"(" + b"".join(b"I" + v + b"\n" for v in lines) + b"L0x10L\nL-5\nl."
    p = write(tmp_path, "ints.pkl", data)
    expected = pickle.loads(data)  # noqa: S301 - our own ints and bools: nothing to run
    assert expected[0] == 0o1751 and expected[1] is True and expected[2] is False
    inv = ckptlint.inspect(p)
    assert inv.structure == expected
    assert [type(v) for v in inv.structure] == [type(v) for v in expected]


@pytest.mark.parametrize("literal", [b"I0o17\n", b"I 1\n", b"I1_0\n", b"L0x1fL\n", b"I12\x00x\n", b"F1e5\n"])
def test_payload_after_an_unusual_literal(tmp_path: Path, literal: bytes) -> None:
    marker = tmp_path / "ran.marker"
    data = literal + b"0" + system_call(marker, proto0=True) + b"."
    p = write(tmp_path, "lit.pkl", data)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM and not stops0(inv)


@pytest.mark.parametrize("literal", [b"L017L\n", b"F 1\n", b"F1_0\n", b"I\n", b"F1e999\n"])
def test_literals_cpython_refuses(tmp_path: Path, literal: bytes) -> None:
    data = b"(" + literal + b"l."
    with pytest.raises((ValueError, OverflowError, pickle.UnpicklingError)):
        pickle.loads(data)  # noqa: S301 - our own literal, no globals
    with pytest.raises(CheckpointError):
        ckptlint.inspect(write(tmp_path, "bad.pkl", data))


def test_protocol0_state_dict_named_pth_is_a_pickle(tmp_path: Path) -> None:
    data = pickle.dumps({"w": [1.5, 2], "n": "x"}, protocol=0)
    p = write(tmp_path, "weights.pth", data)
    inv = ckptlint.inspect(p)
    assert inv.format == "pickle" and inv.structure == {"w": [1.5, 2], "n": "x"}
    assert ckptlint.formats.sniff_kind(str(p)) == "pickle"


def _tensor_pid(type_name: bytes) -> bytes:
    """``_rebuild_tensor_v2((type_name, FloatStorage, '0', 'cpu', 4), 0, (4,), (1,), False, OrderedDict())``."""
    return (g("torch._utils", "_rebuild_tensor_v2") + b"((" + b"C" + bytes([len(type_name)]) + type_name
            + g("torch", "FloatStorage") + su("0") + su("cpu") + b"K\x04tQK\x00K\x04\x85K\x01\x85\x89"
            + g("collections", "OrderedDict") + b")RtR")


def test_bytes_storage_typename_in_a_persistent_id(tmp_path: Path) -> None:
    # torch's persistent_load decodes the type name with _maybe_decode_ascii: b'storage' is 'storage'
    marker = tmp_path / "ran.marker"
    data_pkl = b"\x80\x02}(" + su("w") + _tensor_pid(b"storage") + su("x") + system_call(marker) + b"u."
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", struct.pack("<4f", 1, 2, 3, 4))
        z.writestr("archive/version", "3\n")
    assert reaches(p, marker, loader="torch")
    inv, _ = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM and not stops0(inv)
    (t,) = inv.tensors
    assert t.path == ("w",) and t.shape == (4,) and t.dtype == "float32"


def test_opcode_straddling_a_frame_end_is_read_contiguously(tmp_path: Path) -> None:
    # The frame announces 4 bytes; GLOBAL's lines run past it. _pickle.c's load_frame only checks that
    # the bytes exist and rewinds, so the payload runs; a frame-splitting reader sees garbage.
    marker = tmp_path / "ran.marker"
    body = system_call(marker) + b"."
    data = b"\x80\x04\x95" + struct.pack("<Q", 4) + body
    p = write(tmp_path, "frame.pkl", data)
    assert reaches(p, marker)
    inv, report = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM and not stops0(inv)
    assert any("FRAME boundary" in a for a in inv.anomalies)
    assert "CK107" in {f.code for f in report.findings}


def test_frame_inside_a_frame(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    body = system_call(marker) + b"."
    inner = b"\x95" + struct.pack("<Q", len(body)) + body
    data = b"\x80\x04\x95" + struct.pack("<Q", len(inner)) + b"N0" + inner
    data = data[:11] + b"N0" + data[13:]  # keep the outer frame's length honest
    p = write(tmp_path, "frames.pkl", data)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM and not stops0(inv)
    assert any("inside the previous frame" in a for a in inv.anomalies)


def test_frame_past_the_end_after_a_payload(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    data = b"\x80\x04" + system_call(marker) + b"0\x95" + struct.pack("<Q", 1 << 40) + b"N."
    p = write(tmp_path, "bigframe.pkl", data)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert qualnames(inv) & SYSTEM
    (stop,) = stops0(inv)
    assert "FRAME" in stop.reason


def test_huge_memo_index_allocates_nothing(tmp_path: Path) -> None:
    # CPython would size its memo array by this index (tens of GB); the dict memo costs one entry.
    p = write(tmp_path, "memo.pkl", b"\x80\x02]r\xfe\xff\xff\x7fj\xfe\xff\xff\x7f\x86.")
    tracemalloc.start()
    inv = ckptlint.inspect(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert inv.structure == [[], {"__ref__": "0"}]
    assert peak < 20 << 20
    assert any("memo index 2147483646" in a for a in inv.anomalies)


def test_proto0_strings_and_globals_keep_their_spelling(tmp_path: Path) -> None:
    # fix_imports maps __builtin__ to builtins below protocol 3; the original spelling is kept too
    data = g("__builtin__", "set") + b"(" + s0("ab") + b"tR."
    inv = ckptlint.inspect(write(tmp_path, "p0.pkl", data))
    (ref,) = inv.globals
    assert ref.qualname == "builtins.set" and ref.written == "__builtin__.set"


def test_frame_split_payload_only_torch_reaches(tmp_path: Path) -> None:
    # The frame ends inside BINUNICODE's length. torch.load reads data.pkl from io.BytesIO: the rest of
    # the frame is dropped, the length (0) comes from after the frame, and the payload runs. pickle.loads
    # of the same bytes reads on: its length swallows the payload into a harmless string.
    marker = tmp_path / "ran.marker"
    payload = system_call(marker, proto0=True) + b"0"  # ASCII: a valid string for the contiguous reader
    after = b"\x00\x00\x00\x00" + payload + b"."
    data_pkl = (b"\x80\x04\x95" + struct.pack("<Q", 3) + b"X" + (2 + len(payload)).to_bytes(2, "little")
                + after)
    assert isinstance(pickle.loads(data_pkl), str)  # noqa: S301 - the contiguous reading runs nothing
    assert not marker.exists()
    p = tmp_path / "split.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    assert reaches(p, marker, loader="torch")
    inv, report = inspect_and_check(p, marker)
    assert {(g.qualname, g.stream) for g in inv.globals} & {("os.system", "archive/data.pkl"),
                                                           ("posix.system", "archive/data.pkl")}
    assert any("read different pickles" in a for a in inv.anomalies)
    assert {"CK101", "CK107"} <= {f.code for f in report.findings}
