"""Every check torch's weights_only path makes, one crafted file each, against torch.load(weights_only=True).

The files are built the way an attacker (or a broken writer) would: a torch.save
archive whose ``data.pkl`` or records are replaced. Covered: NEWOBJ/BUILD/APPEND/
SETITEM targets (NEWOBJ of ``collections.OrderedDict``, BUILD with a ``None`` state on
a set, APPEND to a set), persistent-id forms, non-UTF-8 SHORT_BINSTRING, every opcode
torch refuses, the byteorder record's exact values, ``.storage_alignment``, storage
records shorter/longer than their numel or missing, and unreadable files (a definite
``loads: false``). torch never imports a name it does not allow; nothing here runs code.
"""

from __future__ import annotations

import io
import pickletools
import random
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from ckptlint.checker import check_file


def torch_zip(path: Path, data_pkl: bytes | None = None, records: dict[str, bytes | None] | None = None,
              obj: object = None) -> Path:
    """A torch.save archive of ``obj`` with data.pkl and any record replaced (None removes it)."""
    buf = io.BytesIO()
    torch.save({} if obj is None else obj, buf)
    records = dict(records or {})
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        prefix = src.namelist()[0].split("/", 1)[0]
        for n in src.namelist():
            rel = n.split("/", 1)[1]
            data = src.read(n)
            if rel == "data.pkl" and data_pkl is not None:
                data = data_pkl
            if rel in records:
                new = records.pop(rel)
                if new is None:
                    continue
                data = new
            dst.writestr(n, data)
        for rel, data in records.items():
            if data is not None:
                dst.writestr(f"{prefix}/{rel}", data)
    return path


def torch_loads(path: Path) -> tuple[bool, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal is the oracle's answer
        return False, f"{type(e).__name__}: {str(e)[-200:]}"
    return True, ""


def assert_same(path: Path) -> tuple[bool, str]:
    report = check_file(path)
    loads, why = torch_loads(path)
    assert report.verdict is not None, "every file gets a definite verdict"
    assert report.verdict.loads == loads, (report.verdict.blocking[:3], why)
    if not loads:
        assert report.verdict.blocking, "a refusal names its reason"
    return loads, why


def u(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


P2 = b"\x80\x02"

STRUCTURES: dict[str, bytes] = {
    "newobj_ordereddict_setitems": P2 + b"ccollections\nOrderedDict\n)\x81(" + u("a") + b"K\x01u.",
    "newobj_ordereddict_build": P2 + b"ccollections\nOrderedDict\n)\x81}b.",
    "newobj_counter_setitem": P2 + b"ccollections\nCounter\n)\x81" + u("a") + b"K\x01s.",
    "reduce_counter_setitem": P2 + b"ccollections\nCounter\n)R" + u("a") + b"K\x01s.",
    "reduce_ordereddict_setitem": P2 + b"ccollections\nOrderedDict\n)R" + u("a") + b"K\x01s.",
    "newobj_set_append": P2 + b"cbuiltins\nset\n)\x81K\x01a.",
    "reduce_set_build_none": P2 + b"cbuiltins\nset\n]K\x01a\x85RNb.",
    "reduce_set_build_dict": P2 + b"cbuiltins\nset\n]K\x01a\x85R}" + u("x") + b"K\x01sb.",
    "newobj_tensor_class": P2 + b"ctorch\nTensor\n)\x81.",
    "newobj_parameter": P2 + b"ctorch.nn.parameter\nParameter\n)\x81.",
    "newobj_of_function": P2 + b"ctorch._utils\n_rebuild_tensor_v2\n)\x81.",
    "reduce_on_dtype": P2 + b"ctorch\nfloat32\n)R.",
    "setitem_on_list": P2 + b"]" + u("a") + b"K\x01s.",
    "append_on_dict": P2 + b"}K\x01a.",
    "append_on_tuple_list": P2 + b"](K\x01K\x02e.",
    "build_on_dict": P2 + b"}}b.",
    "build_on_list": P2 + b"]}b.",
    "persid_int": P2 + b"K\x05Q.",
    "persid_other_tuple": P2 + u("module") + b"\x85Q.",
    "persid_list": P2 + b"]Q.",
    "short_binstring_utf8": P2 + b"U\x03abc.",
    "short_binstring_latin1": P2 + b"U\x02\xe9\xff.",
    "binunicode_surrogate": P2 + b"X\x03\x00\x00\x00\xed\xa0\x80.",
    "long1": P2 + b"\x8a\x02\xff\x7f.",
    "empty_set": P2 + b"\x8f.",
    "memo_roundtrip": P2 + b"]q\x00h\x00\x86.",
    "global_blocked_module": P2 + b"cos\ngetcwd\n.",
    "global_split_elsewhere": P2 + b"ctorch\n_utils._rebuild_tensor_v2\n.",   # torch joins module.name
    "global_builtin_py2_at_p3": b"\x80\x03c__builtin__\nset\n).",
    "global_exception_registered_by_import": P2 + b"cbuiltins\nValueError\n.",
    "global_exception_alias": P2 + b"cbuiltins\nIOError\n.",                  # alias: torch keys by __qualname__
    "no_proto": b"}K\x01K\x02s.",
}

# Opcodes outside torch's weights_only set, each in a minimal pickle that CPython accepts.
OPCODES: dict[str, bytes] = {
    "INT": b"I12\n.", "LONG": b"L12\n.", "STRING": b"S'a'\n.", "UNICODE": b"Va\n.", "FLOAT": b"F1.5\n.",
    "BINSTRING": b"T\x01\x00\x00\x00a.", "BINBYTES": P2 + b"B\x01\x00\x00\x00a.", "SHORT_BINBYTES": P2 + b"C\x01a.",
    "LONG4": P2 + b"\x8b\x01\x00\x00\x00\x01.", "DUP": P2 + b"K\x012\x86.", "POP": P2 + b"K\x01K\x020.",
    "POP_MARK": P2 + b"K\x01(K\x021.", "LIST": P2 + b"(K\x01l.", "DICT": P2 + b"(K\x01K\x02d.",
    "PUT_GET": b"]p0\ng0\n\x86.", "SHORT_BINUNICODE": b"\x80\x04\x8c\x01a.",
    "BINUNICODE8": b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00a.",
    "BINBYTES8": b"\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.", "MEMOIZE": b"\x80\x04]\x94.",
    "FRAME": b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00].", "STACK_GLOBAL": b"\x80\x04\x8c\x0bcollections"
    b"\x8c\x0bOrderedDict\x93).", "FROZENSET": b"\x80\x04(K\x01\x91.", "ADDITEMS": b"\x80\x04\x8f(K\x01\x90.",
    "BYTEARRAY8": b"\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00a.",
    "NEWOBJ_EX": b"\x80\x04ccollections\nOrderedDict\n)}\x92.", "INST": b"(icollections\nOrderedDict\n.",
    "OBJ": b"(ccollections\nOrderedDict\no.", "PERSID": b"Pstorage\n.",
    "EXT1": b"\x80\x02\x82\x01.",
}


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_structures(name: str, tmp_path: Path) -> None:
    assert_same(torch_zip(tmp_path / f"{name}.pt", STRUCTURES[name]))


def test_the_issue_cases_load_as_torch_says(tmp_path: Path) -> None:
    """NEWOBJ of OrderedDict (then SETITEMS) loads; ckptlint used to refuse it."""
    assert assert_same(torch_zip(tmp_path / "od.pt", STRUCTURES["newobj_ordereddict_setitems"]))[0]
    assert not assert_same(torch_zip(tmp_path / "set.pt", STRUCTURES["newobj_set_append"]))[0]


@pytest.mark.parametrize("name", sorted(OPCODES))
def test_refused_opcodes(name: str, tmp_path: Path) -> None:
    path = torch_zip(tmp_path / f"{name}.pt", OPCODES[name])
    loads, _ = assert_same(path)
    assert not loads
    report = check_file(path)
    assert report.verdict is not None
    assert report.verdict.blocking[0].kind in ("opcode", "format", "structure"), report.verdict.blocking


@pytest.mark.parametrize("value", [b"little", b"big", b"middle", b"little\n", b" big", b"", b"LITTLE", b"\xff"])
def test_byteorder_record_values(value: bytes, tmp_path: Path) -> None:
    path = torch_zip(tmp_path / "bo.pt", records={"byteorder": value}, obj={"w": torch.ones(2)})
    loads, _ = assert_same(path)
    assert loads == (value in (b"little", b"big"))


@pytest.mark.parametrize("value,ok", [(b"64", True), (b" 32\n", True), (b"abc", False), (b"", False)])
def test_storage_alignment_record(value: bytes, ok: bool, tmp_path: Path) -> None:
    path = torch_zip(tmp_path / "al.pt", records={".storage_alignment": value}, obj={"w": torch.ones(2)})
    assert assert_same(path)[0] == ok


@pytest.mark.parametrize("size", [None, 0, 8, 11, 12, 13, 16])
def test_storage_record_size_against_numel(size: int | None, tmp_path: Path) -> None:
    """3 float32 = 12 bytes declared; torch wants the record exactly that long (None: no record)."""
    data = None if size is None else bytes(size)
    path = torch_zip(tmp_path / "st.pt", records={"data/0": data}, obj={"w": torch.ones(3)})
    assert assert_same(path)[0] == (size == 12)


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x00" * 64, b"PK\x03\x04broken", b"\x80\x02}q\x00("])
def test_unreadable_files_get_a_definite_no(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    report = check_file(path)
    assert report.verdict is not None and report.verdict.loads is False
    assert torch_loads(path)[0] is False


def test_allowed_kinds_match_torchs_objects() -> None:
    """allowed_kind() says class/function/value for every entry of torch's live allowlist."""
    from torch import _weights_only_unpickler as wo

    from ckptlint.safety.torch_rules import allowed_kind

    table = {**wo._get_allowed_globals(), **wo._get_user_allowed_globals()}
    for name, obj in table.items():
        real = "class" if isinstance(obj, type) else "function" if callable(obj) else "value"
        assert allowed_kind(name) == real, name


# --------------------------------------------------------------------------- random programs
# Short random sequences over the opcodes torch's weights_only unpickler knows (plus a few it refuses), with
# allowlisted, user-registered and refused globals: the verdict must equal torch's on every one.

_GLOBALS = [("collections", "OrderedDict"), ("collections", "Counter"), ("builtins", "set"), ("builtins", "bytearray"),
            ("builtins", "complex"), ("torch", "Size"), ("torch", "float32"), ("torch._utils", "_rebuild_tensor_v2"),
            ("torch.nn.parameter", "Parameter"), ("torch", "Tensor"), ("__builtin__", "set"),
            ("builtins", "ValueError"), ("traceback", "StackSummary"), ("torch", "FloatStorage"),
            ("_codecs", "encode"), ("builtins", "dict"), ("argparse", "Namespace"), ("torch", "device"),
            ("torch", "per_tensor_affine")]


def _atom(r: random.Random) -> bytes:
    k = r.randrange(27)
    if k == 0:
        module, name = r.choice(_GLOBALS)
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    if k == 1:
        return b"K" + bytes([r.randrange(256)])
    if k == 2:
        return u(r.choice(["a", "b", "storage", "cpu", "0"]))
    if k == 3:
        return b"q" + bytes([r.randrange(3)])
    if k == 4:
        return b"h" + bytes([r.randrange(3)])
    if k == 5:
        return b"U\x02" + bytes([r.randrange(256), r.randrange(256)])
    return [b"N", b"}", b"]", b")", b"\x8f", b"(", b"t", b"\x85", b"\x86", b"R", b"\x81", b"b", b"a", b"e", b"s",
            b"u", b"\x88", b"\x89", b"Q", b"G?\xf8\x00\x00\x00\x00\x00\x00", b"\x8a\x01\x05"][k - 6]


# Where CPython's C unpickler (whose reading the static machine follows, for pickle.load and
# weights_only=False) raises but torch's pure-Python weights_only unpickler goes on: NEWOBJ with a list of
# arguments (torch: cls.__new__(cls, *args)), BUILD with a falsy non-dict state on a set (torch: `if state:`).
CPYTHON_ONLY_STOPS = ("NEWOBJ expected an arg tuple", "state is not a dictionary")


def test_random_programs_match_torch(tmp_path: Path) -> None:
    r = random.Random(20261130)
    mismatches = []
    loaded = 0
    for i in range(400):
        body = b"".join(_atom(r) for _ in range(r.randrange(2, 12)))
        program = b"\x80" + bytes([r.choice([2, 2, 3])]) + body + b"."
        path = torch_zip(tmp_path / f"r{i}.pt", program)
        report = check_file(path)
        loads, why = torch_loads(path)
        loaded += loads
        assert report.verdict is not None
        if report.verdict.loads != loads:
            stop = [b.detail for b in report.verdict.blocking if any(r in b.detail for r in CPYTHON_ONLY_STOPS)]
            if not (loads and stop):
                mismatches.append((program, loads, why, report.verdict.blocking[:2]))
        path.unlink()
    assert loaded > 10, "the generator must produce files torch loads, or the comparison says little"
    assert mismatches == []


@pytest.mark.parametrize("proto", [6, 0x22])
def test_unknown_protocol_in_a_legacy_stream(proto: int, tmp_path: Path) -> None:
    """torch's weights_only unpickler only warns on PROTO > 5 (CPython stops): the storage-keys pickle of a
    legacy file with PROTO 6 or 34 still loads, and the verdict follows the reader's weights_only reading."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=False)
    data = bytearray(buf.getvalue())
    f, pos = io.BytesIO(bytes(data)), 0
    for _ in range(4):
        for op, _arg, p in pickletools.genops(f):
            if op.name == "STOP":
                pos = (p or 0) + 1
        f.seek(pos)
    assert data[pos] == 0x80  # the storage-keys pickle
    data[pos + 1] = proto
    path = tmp_path / "legacy_proto.pt"
    path.write_bytes(bytes(data))
    assert assert_same(path)[0]
