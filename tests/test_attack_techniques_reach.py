"""The proof tests/test_safety_techniques.py leaves out: each way it reaches a dangerous callable,
written byte for byte the same way, really runs under ``pickle.load`` (issue #11, "proof by a
marker file that the real loader reaches the payload in every malicious test file"), and ckptlint
names it at error level. (Its NEWOBJ/NEWOBJ_EX ``subprocess.Popen`` files are left out: NEWOBJ calls
``Popen.__new__`` only, so no process starts; ckptlint still names the global, rightly.)

One throwaway subprocess loads every file in a working directory of its own; payloads only
create ``MARKER`` there (``touch``, ``open``).
"""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path

import pytest

from ckptlint.checker import check_file

from conftest import python_process

pytestmark = pytest.mark.integration  # the proof runs pickle.load in a subprocess

CMD = "touch MARKER"


def s0(text: str) -> bytes:
    return b"S" + repr(text).encode() + b"\n"


def u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def g0(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


INNER = g0("os", "system") + b"(" + s0(CMD) + b"tR."

TECHNIQUES: dict[str, tuple[bytes, set[str]]] = {
    # name: (the file, the globals ckptlint must name at error level)
    "global": (g0("os", "system") + b"(" + s0(CMD) + b"tR.", {"os.system"}),
    "stack_global_with_memoized_strings": (
        b"\x80\x04" + u("os") + b"q\x00" + u("system") + b"q\x01" + b"00" + b"h\x00h\x01\x93" + u(CMD) + b"\x85R.",
        {"os.system"}),
    "inst": (b"(" + s0(CMD) + b"ios\nsystem\n.", {"os.system"}),
    "obj": (b"(" + g0("os", "system") + b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"o.", {"os.system"}),
    "builtins_getattr_chain": (
        g0("builtins", "getattr") + b"(" + g0("builtins", "__import__") + b"(" + s0("os") + b"tR" + s0("system")
        + b"tR(" + s0(CMD) + b"tR.", {"builtins.getattr", "builtins.__import__"}),
    "builtins_getattr_on_module_global": (
        # argparse._os stands in for test_safety_techniques' torch.serialization.os (no torch in the child)
        g0("__builtin__", "getattr") + b"(" + g0("argparse", "_os") + s0("system") + b"tR(" + s0(CMD) + b"tR.",
        {"builtins.getattr"}),
    "operator_attrgetter": (
        g0("operator", "attrgetter") + b"(" + s0("system") + b"tR(" + g0("importlib", "import_module") + b"("
        + s0("os") + b"tRtR(" + s0(CMD) + b"tR.", {"operator.attrgetter", "importlib.import_module"}),
    "functools_partial": (g0("functools", "partial") + b"(" + g0("os", "system") + s0(CMD) + b"tR(tR.",
                          {"functools.partial", "os.system"}),
    "nested_pickle_loads": (b"\x80\x03" + g0("pickle", "loads") + b"C" + bytes([len(INNER)]) + INNER + b"\x85R.",
                            {"pickle.loads", "os.system"}),
    "nested_c_pickle_loads": (b"\x80\x03" + g0("_pickle", "loads") + b"C" + bytes([len(INNER)]) + INNER + b"\x85R.",
                              {"_pickle.loads", "os.system"}),
}

PROOF = textwrap.dedent("""
    import json, os, pickle, sys
    out = {}
    for path in sys.argv[1:]:
        os.chdir(os.path.dirname(path))
        try:
            with open(path, "rb") as f:
                pickle.load(f)
        except BaseException:
            pass
        out[path] = os.path.exists("MARKER")
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("techniques")
    files = {}
    for name, (data, _) in TECHNIQUES.items():
        (root / name).mkdir()
        files[name] = root / name / "payload.pkl"
        files[name].write_bytes(data)
    return files


@pytest.fixture(scope="module")
def reached(corpus: dict[str, Path]) -> dict[str, bool]:
    proc = python_process("-c", PROOF, *corpus.values(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, bool] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_pickle_load_reaches_it_and_ckptlint_names_it(name: str, corpus: dict[str, Path],
                                                      reached: dict[str, bool]) -> None:
    path = corpus[name]
    assert reached[str(path)] is True, f"pickle.load never ran the {name} payload"
    (path.parent / "MARKER").unlink()
    report = check_file(path)
    assert not (path.parent / "MARKER").exists(), "ckptlint executed the file"
    named = {f.message.split(" can run code")[0] for f in report.findings if f.code == "CK101"
             and f.severity == "error"}
    want = TECHNIQUES[name][1]
    assert want <= named | {n.replace("os.", "posix.") for n in named}, (want, named)
    assert report.verdict is not None and report.verdict.loads is False
