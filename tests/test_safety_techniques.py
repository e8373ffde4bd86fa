"""Each way a pickle can reach a dangerous callable, hand-built opcode by opcode.

Every payload would create a marker file under ``tmp_path`` if anything ever
unpickled it; each test asserts CK101 names the right global and that the
marker never appears (ckptlint never executes the file).
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ckptlint.checker import FileReport, check_file
from ckptlint.inventory import Inventory
from ckptlint.results import Verdict

SYSTEM = {"os.system", "posix.system"}


# --------------------------------------------------------------------------- opcode helpers

def s0(text: str) -> bytes:
    """Protocol-0 STRING opcode."""
    return b"S" + repr(text).encode() + b"\n"


def u(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4) or BINUNICODE for longer text."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def g0(module: str, name: str) -> bytes:
    """GLOBAL opcode."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def cmd(marker: Path) -> str:
    return f"touch {marker}"


def wo(report: FileReport) -> Verdict:
    assert report.verdict is not None
    return report.verdict


def inv(report: FileReport) -> Inventory:
    assert report.inventory is not None
    return report.inventory


def ck101(report: FileReport) -> set[str]:
    """The globals CK101 names."""
    return {f.message.split(" can run code")[0] for f in report.findings if f.code == "CK101"}


def check_bytes(tmp_path: Path, data: bytes, name: str = "payload.pkl") -> FileReport:
    # The bytes must be a well-formed pickle (pickletools walks opcodes; it never calls anything).
    pickletools.dis(data, out=io.StringIO())
    path = tmp_path / name
    path.write_bytes(data)
    report = check_file(path)
    assert report.error is None, report.error
    return report


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    m = tmp_path / "MARKER"
    yield m
    assert not m.exists(), "the payload ran"


class Payload:
    """``os.system("touch <marker>")`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (cmd(self.marker),)


# --------------------------------------------------------------------------- techniques

def test_global(tmp_path: Path, marker: Path) -> None:
    data = g0("os", "system") + b"(" + s0(cmd(marker)) + b"tR."
    r = check_bytes(tmp_path, data)
    assert "os.system" in ck101(r)
    assert wo(r).categories["os.system"] == "dangerous"
    assert not wo(r).loads


def test_stack_global_with_memoized_strings(tmp_path: Path, marker: Path) -> None:
    data = (b"\x80\x04"
            + u("os") + b"q\x00" + u("system") + b"q\x01" + b"00"   # BINPUT 0/1, then POP both
            + b"h\x00h\x01\x93"                                        # BINGET 0, BINGET 1, STACK_GLOBAL
            + u(cmd(marker)) + b"\x85R.")                              # TUPLE1, REDUCE
    r = check_bytes(tmp_path, data)
    assert "os.system" in ck101(r)
    refs = [g for g in inv(r).globals if g.qualname == "os.system"]
    assert refs and refs[0].opcode == "STACK_GLOBAL"


def test_inst(tmp_path: Path, marker: Path) -> None:
    data = b"(" + s0(cmd(marker)) + b"ios\nsystem\n."
    r = check_bytes(tmp_path, data)
    assert "os.system" in ck101(r)
    assert [g.opcode for g in inv(r).globals if g.qualname == "os.system"] == ["INST"]


def test_obj(tmp_path: Path, marker: Path) -> None:
    data = b"(" + g0("os", "system") + b"X" + struct.pack("<I", len(cmd(marker))) + cmd(marker).encode() + b"o."
    r = check_bytes(tmp_path, data)
    assert "os.system" in ck101(r)


def test_newobj_popen(tmp_path: Path, marker: Path) -> None:
    data = (b"\x80\x02" + g0("subprocess", "Popen")
            + b"](" + u("touch") + u(str(marker)) + b"e\x85"         # (["touch", marker],)
            + b"\x81.")                                              # NEWOBJ
    r = check_bytes(tmp_path, data)
    assert "subprocess.Popen" in ck101(r)


def test_newobj_ex_popen(tmp_path: Path, marker: Path) -> None:
    data = (b"\x80\x04" + u("subprocess") + u("Popen") + b"\x93"
            + b"](" + u("touch") + u(str(marker)) + b"e\x85"         # args
            + b"}" + u("shell") + b"\x89s"                           # kwargs {"shell": False}
            + b"\x92.")                                              # NEWOBJ_EX
    r = check_bytes(tmp_path, data)
    assert "subprocess.Popen" in ck101(r)


@pytest.mark.parametrize("opcode,code", [("EXT1", 240), ("EXT2", 0x1234), ("EXT4", 0x123456)])
def test_ext_codes_through_copyreg_registry(tmp_path: Path, marker: Path, opcode: str, code: int) -> None:
    arg = {"EXT1": lambda: b"\x82" + bytes([code]), "EXT2": lambda: b"\x83" + struct.pack("<H", code),
           "EXT4": lambda: b"\x84" + struct.pack("<i", code)}[opcode]()
    data = b"\x80\x02" + arg + b"X" + struct.pack("<I", len(cmd(marker))) + cmd(marker).encode() + b"\x85R."
    copyreg.add_extension("os", "system", code)
    try:
        r = check_bytes(tmp_path, data)
    finally:
        copyreg.remove_extension("os", "system", code)
    assert ck101(r) & SYSTEM, r.findings
    assert [g.opcode for g in inv(r).globals if g.qualname in SYSTEM] == [opcode]


def test_unregistered_ext_code_stops_and_is_reported(tmp_path: Path, marker: Path) -> None:
    """CPython and torch raise on an extension code no process registered: nothing runs, the file is
    reported unreadable at that byte (an error finding), and the verdict is a definite no."""
    assert 241 not in copyreg._inverted_registry  # type: ignore[attr-defined]
    data = b"\x80\x02\x82\xf1" + u(cmd(marker)) + b"\x85R."
    pickletools.dis(data, out=io.StringIO())
    path = tmp_path / "payload.pkl"
    path.write_bytes(data)
    r = check_file(path)
    assert r.error is not None and "unregistered extension code 241" in r.error
    assert [f.severity for f in r.findings if "extension code 241" in f.message] == ["error"]
    assert not wo(r).loads
    assert "extension code 241" in wo(r).blocking[0].detail


def test_builtins_getattr_chain(tmp_path: Path, marker: Path) -> None:
    # getattr(__import__("os"), "system")("touch ...")
    data = (g0("builtins", "getattr") + b"(" + g0("builtins", "__import__") + b"(" + s0("os") + b"tR"
            + s0("system") + b"tR(" + s0(cmd(marker)) + b"tR.")
    r = check_bytes(tmp_path, data)
    assert {"builtins.getattr", "builtins.__import__"} <= ck101(r)


def test_builtins_getattr_on_module_global(tmp_path: Path, marker: Path) -> None:

    # getattr(<the os module, reached as a global of a harmless-looking module>, "system")
    data = (g0("__builtin__", "getattr") + b"(" + g0("torch.serialization", "os") + s0("system") + b"tR"
            + b"(" + s0(cmd(marker)) + b"tR.")
    r = check_bytes(tmp_path, data)
    assert "builtins.getattr" in ck101(r)   # __builtin__ read as builtins, as the unpickler does
    assert not wo(r).loads


def test_operator_attrgetter(tmp_path: Path, marker: Path) -> None:
    # attrgetter("system")(__import__("os"))("touch ...")
    data = (g0("operator", "attrgetter") + b"(" + s0("system") + b"tR"
            + b"(" + g0("importlib", "import_module") + b"(" + s0("os") + b"tRtR"
            + b"(" + s0(cmd(marker)) + b"tR.")
    r = check_bytes(tmp_path, data)
    assert {"operator.attrgetter", "importlib.import_module"} <= ck101(r)


def test_functools_partial(tmp_path: Path, marker: Path) -> None:
    # partial(os.system, "touch ...")()
    data = g0("functools", "partial") + b"(" + g0("os", "system") + s0(cmd(marker)) + b"tR(tR."
    r = check_bytes(tmp_path, data)
    assert {"functools.partial"} | {"os.system"} <= ck101(r)


def test_nested_pickle_loads_is_dangerous(tmp_path: Path, marker: Path) -> None:
    inner = g0("os", "system") + b"(" + s0(cmd(marker)) + b"tR."
    data = b"\x80\x03" + g0("pickle", "loads") + b"C" + bytes([len(inner)]) + inner + b"\x85R."
    r = check_bytes(tmp_path, data)
    assert "pickle.loads" in ck101(r)
    assert not wo(r).loads


def test_nested_pickle_inner_payload_is_scanned(tmp_path: Path, marker: Path) -> None:
    inner = g0("os", "system") + b"(" + s0(cmd(marker)) + b"tR."
    data = b"\x80\x03" + g0("_pickle", "loads") + b"C" + bytes([len(inner)]) + inner + b"\x85R."
    r = check_bytes(tmp_path, data)
    assert {"_pickle.loads", "os.system"} <= ck101(r)
    inner_refs = [g for g in inv(r).globals if g.qualname == "os.system"]
    assert inner_refs and "nested" in inner_refs[0].stream


def _stops(data: bytes) -> list[int]:
    """Offsets just past each STOP of consecutive pickles (pickletools never calls anything)."""
    ends, pos = [], 0
    f = io.BytesIO(data)
    for _ in range(3):
        for op, _arg, p in pickletools.genops(f):
            if op.name == "STOP":
                pos = (p or 0) + 1
        ends.append(pos)
        f.seek(pos)
    return ends


def test_payload_in_later_pickle_of_legacy_file(tmp_path: Path, marker: Path, torch: ModuleType) -> None:
    safe = tmp_path / "safe_legacy.pt"
    torch.save({"w": torch.ones(3)}, safe, _use_new_zipfile_serialization=False)
    data = safe.read_bytes()
    _end0, end1, end2 = _stops(data)
    evil = pickle.dumps(Payload(marker), protocol=2)
    spliced = data[:end1] + evil + data[end2:]       # replace the sys_info pickle (#2)
    path = tmp_path / "evil_legacy.pt"
    path.write_bytes(spliced)
    r = check_file(path)
    assert r.error is None, r.error
    hits = [g for g in inv(r).globals if g.qualname in SYSTEM]
    assert hits and hits[0].stream == "pickle#2", hits
    assert ck101(r) & SYSTEM
    assert not wo(r).loads
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_payload_in_extra_zip_entry(tmp_path: Path, marker: Path, torch: ModuleType) -> None:
    path = tmp_path / "extra.pt"
    torch.save({"w": torch.ones(3)}, path)
    with zipfile.ZipFile(path) as z:
        prefix = next(n for n in z.namelist() if n.endswith("/data.pkl"))[: -len("data.pkl")]
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(prefix + "extra.pkl", pickle.dumps(Payload(marker), protocol=2))
    r = check_file(path)
    assert r.error is None, r.error
    codes = {f.code for f in r.findings}
    assert "CK106" in codes and "CK101" in codes
    ck106 = [f for f in r.findings if f.code == "CK106"]
    assert ck106[0].severity == "error" and "extra.pkl" in ck106[0].message
    assert ck101(r) & SYSTEM
    try:  # torch reads only data.pkl: the verdict says what torch does with the file
        torch.load(path, weights_only=True)
        loads = True
    except Exception:  # noqa: BLE001
        loads = False
    assert wo(r).loads == loads


def test_payload_inside_state_dict_value(tmp_path: Path, marker: Path, torch: ModuleType) -> None:
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(3), "evil": Payload(marker)}, path)
    r = check_file(path)
    hits = [f for f in r.findings if f.code == "CK101"]
    assert hits and hits[0].key == "evil", hits
    assert hits[0].message.split(" can run code")[0] in SYSTEM


@pytest.mark.parametrize("suffix", [".pkl", ".bin", ".ckpt", ".pt"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_raw_pickles(tmp_path: Path, marker: Path, suffix: str, protocol: int) -> None:
    r = check_bytes(tmp_path, pickle.dumps({"evil": Payload(marker)}, protocol=protocol), "raw" + suffix)
    assert r.format == "pickle"
    assert ck101(r) & SYSTEM
    assert not wo(r).loads


def test_protocol0_text_pickle(tmp_path: Path, marker: Path) -> None:
    data = pickle.dumps([1, {"k": Payload(marker)}], protocol=0)
    assert data.isascii() and data.startswith(b"(lp0")
    r = check_bytes(tmp_path, data, "text.pkl")
    assert ck101(r) & SYSTEM


def test_safe_state_dict_no_findings(tmp_path: Path, torch: ModuleType) -> None:
    path = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    r = check_file(path)
    assert r.findings == []
    assert wo(r).loads


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptlint", "check", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_malicious_and_clean(tmp_path: Path, marker: Path, torch: ModuleType) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "evil": Payload(marker)}, evil)
    clean = tmp_path / "clean.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), clean)
    r = _cli(str(evil))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CK101" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    assert not marker.exists()
    r = _cli(str(clean))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


# --------------------------------------------------------------------------- classification by exact name

def _reaches(tmp_path: Path, data: bytes, marker: Path) -> bool:
    """Whether CPython's pickle.loads reaches the payload: run in a throwaway process (harmless `touch`)."""
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    payload = tmp_path / "reach.pkl"
    payload.write_bytes(data)
    subprocess.run([sys.executable, "-c", code, str(payload)], capture_output=True, timeout=60, cwd=tmp_path)
    reached = marker.exists()
    if reached:
        marker.unlink()  # the `marker` fixture asserts ckptlint itself never ran anything
    return reached


@pytest.mark.integration  # the marker proof imports torchvision in a child process
def test_attribute_chain_through_a_model_package_is_dangerous_not_a_model(tmp_path: Path, marker: Path) -> None:

    data = (b"\x80\x04" + u("torchvision.models.resnet") + u("torch.os.system") + b"\x93"
            + u(cmd(marker)) + b"\x85R.")
    r = check_bytes(tmp_path, data)
    q = "torchvision.models.resnet.torch.os.system"
    assert wo(r).categories[q] == "dangerous"
    assert q in ck101(r)
    assert not any(f.code == "CK102" for f in r.findings)
    assert _reaches(tmp_path, data, marker), "CPython's loader resolves the chain and runs the shell"


@pytest.mark.integration  # the marker proof imports numpy in a child process
def test_numpy_file_writers_are_dangerous_and_never_advised(tmp_path: Path, marker: Path) -> None:
    # numpy.savetxt(marker, [1.0]): the old "lower-case numpy is data" rule told users to allowlist this
    data = (b"\x80\x02" + g0("numpy", "savetxt") + u(str(marker)) + b"]G?\xf0\x00\x00\x00\x00\x00\x00a\x86R.")
    r = check_bytes(tmp_path, data)
    assert "numpy.savetxt" in ck101(r)
    assert not any(f.code == "CK104" for f in r.findings)
    assert "add_safe_globals" not in wo(r).advice
    assert all("add_safe_globals" not in (f.fix or "") for f in r.findings)
    assert _reaches(tmp_path, data, marker), "CPython's loader calls numpy.savetxt, which writes the file"


def test_harmless_pure_names_are_not_errors(tmp_path: Path) -> None:
    data = (b"\x80\x02}(" + u("a") + g0("builtins", "len") + u("b") + g0("__future__", "annotations")
            + u("c") + g0("collections.abc", "Iterable") + b"u.")
    r = check_bytes(tmp_path, data, "pure.pt")
    assert [f for f in r.findings if f.severity == "error"] == []
    assert {wo(r).categories[q] for q in ("builtins.len", "__future__.annotations",
                                              "collections.abc.Iterable")} == {"data"}


def test_unknown_builtins_name_says_importing_builtins_runs_nothing(tmp_path: Path) -> None:
    r = check_bytes(tmp_path, b"\x80\x02" + g0("builtins", "hash") + b".", "hash.pkl")
    ck103 = [f.message for f in r.findings if f.code == "CK103"]
    assert ck103 and "importing builtins runs nothing" in ck103[0]
    assert all("add_safe_globals" not in (f.fix or "") for f in r.findings)
