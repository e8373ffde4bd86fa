"""ckptlint's copy of torch's weights_only allowlist cannot drift from the installed torch's."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy
import pytest
import torch
from torch import _weights_only_unpickler as wo

from ckptlint.checker import check_file
from ckptlint.safety.allowlist import (
    BLOCKLISTED_MODULES,
    allowed_globals,
    installed_torch_version,
    registered_on_import,
    static_allowed_globals,
)
from ckptlint.safety.classify import classify
from ckptlint.safety.names import DATA
from ckptlint.safety.torch_rules import TORCH_IMPORT_MAPPING, TORCH_NAME_MAPPING, torch_global_name
from ckptlint.safety.weights_only import safe_globals_line


def test_static_table_equals_installed_torch() -> None:
    version = installed_torch_version()
    assert version is not None
    assert static_allowed_globals(version) == frozenset(wo._get_allowed_globals())


def test_blocklist_equals_torch() -> None:
    assert frozenset(wo._blocklisted_modules) == BLOCKLISTED_MODULES


def test_live_list_includes_user_safe_globals() -> None:
    class TrustedConfig:
        pass

    name = f"{TrustedConfig.__module__}.{TrustedConfig.__qualname__}"
    assert name not in allowed_globals()
    with torch.serialization.safe_globals([TrustedConfig]):
        assert name in allowed_globals()
    assert name not in allowed_globals()


def test_without_torch_imported_the_table_is_used() -> None:
    code = ("import sys; from ckptlint.safety.allowlist import allowed_globals, static_allowed_globals, "
            "registered_on_import, installed_torch_version; a = allowed_globals(); "
            "assert 'torch' not in sys.modules; v = installed_torch_version(); "
            "assert a == static_allowed_globals(v) | registered_on_import(v); print(len(a))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    version = installed_torch_version()
    assert int(proc.stdout) == len(set(wo._get_allowed_globals()) | set(registered_on_import(version)))


def test_what_import_torch_registers_equals_torch() -> None:
    """A fresh ``import torch`` (nothing else) allowlists exactly registered_on_import()."""
    code = ("import json, torch; from torch import _weights_only_unpickler as wo; "
            "print(json.dumps(sorted(wo._get_user_allowed_globals())))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(proc.stdout)) == set(registered_on_import(installed_torch_version()))


def test_every_allowed_global_classifies_as_allowed() -> None:
    allowed = frozenset(wo._get_allowed_globals())
    for q in allowed:
        assert classify(q, q.rsplit(".", 1)[0], allowed=allowed) == "allowed", q


# --------------------------------------------------------------------------- generated global names
# Real names from torch's allowlist, numpy, builtins, collections and the modules attackers use, each
# written into a torch.save zip as one GLOBAL (protocol 2 and 3): ckptlint's classification and verdict
# against torch.load(weights_only=True) and get_unsafe_globals_in_checkpoint. torch never imports a name
# it does not allow, so this runs nothing.



ATTACK_MODULES = ["os", "posix", "subprocess", "sys", "shutil", "socket", "ctypes", "importlib", "pickle",
                  "runpy", "webbrowser", "pty", "marshal", "numpy.testing", "numpy.ctypeslib", "numpy.lib.npyio"]


def _public(module: str, limit: int = 400) -> list[str]:
    mod = __import__(module, fromlist=["_"])
    return [f"{module}.{n}" for n in sorted(dir(mod)) if n.isidentifier() and not n.startswith("__")][:limit]


def generated_names() -> list[str]:
    names: set[str] = set(wo._get_allowed_globals())
    names |= set(_public("builtins")) | set(_public("collections")) | set(_public("collections.abc"))
    names |= set(_public("numpy"))
    for m in ATTACK_MODULES:
        names |= set(_public(m, 40))
    names |= set(DATA)
    return sorted(names)


def torch_zip(path: Path, data_pkl: bytes) -> Path:
    """A torch.save archive whose data.pkl is replaced (every other record kept)."""
    buf = io.BytesIO()
    torch.save({}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, data_pkl if n.endswith("/data.pkl") else src.read(n))
    return path


def global_pickle(module: str, name: str, protocol: int = 2) -> bytes:
    """``{"x": <module.name>}`` with the global written by a GLOBAL opcode."""
    return (b"\x80" + bytes([protocol]) + b"}X\x01\x00\x00\x00x" + b"c" + module.encode() + b"\n"
            + name.encode() + b"\ns.")


def torch_verdict(path: Path) -> tuple[bool, set[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        try:
            torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - any refusal is the oracle's answer
            return False, unsafe
    return True, unsafe


def test_generated_names_match_torch(tmp_path: Path) -> None:
    names = generated_names()
    assert len(names) > 700
    allowed = frozenset(wo._get_allowed_globals()) | frozenset(wo._get_user_allowed_globals())
    mismatches = []
    for i, q in enumerate(names):
        module, name = q.rsplit(".", 1)
        path = torch_zip(tmp_path / f"g{i}.pt", global_pickle(module, name))
        report = check_file(path)
        loads, unsafe = torch_verdict(path)
        cat = report.verdict.categories[q]
        theirs = q in allowed
        ours_unsafe = {b.detail for b in report.verdict.blocking if b.kind == "global"}
        if (report.verdict.loads, cat == "allowed", ours_unsafe) != (loads, theirs, unsafe):
            mismatches.append((q, cat, report.verdict.loads, loads, ours_unsafe, unsafe))
        if module in ATTACK_MODULES:
            assert cat == "dangerous", q
        if cat == "data":
            assert q in DATA, q
        if module == "numpy" and q not in DATA:
            assert cat != "data", q
    assert mismatches == []


@pytest.mark.parametrize("protocol", [2, 3])
def test_protocol2_spellings_as_torch_maps_them(tmp_path: Path, protocol: int) -> None:
    """torch maps ``__builtin__``/``copy_reg``/``exceptions``… spellings at every protocol."""
    assert TORCH_IMPORT_MAPPING == torch._utils.IMPORT_MAPPING
    assert TORCH_NAME_MAPPING == torch._utils.NAME_MAPPING
    spellings = [(m, n) for m, n in TORCH_NAME_MAPPING] + [(m, n) for m in TORCH_IMPORT_MAPPING
                                                           for n in ("set", "OrderedDict", "len", "eval")]
    for i, (module, name) in enumerate(spellings):
        path = torch_zip(tmp_path / f"p{protocol}_{i}.pt", global_pickle(module, name, protocol))
        report = check_file(path)
        loads, unsafe = torch_verdict(path)
        assert report.verdict.loads == loads, (module, name, report.verdict.blocking)
        ours = {b.detail for b in report.verdict.blocking if b.kind == "global"}
        assert ours == unsafe, (module, name)
        assert (torch_global_name(module, name) in unsafe) != loads


def test_data_list_advice_makes_torch_load_every_entry(tmp_path: Path) -> None:
    """One file holding every data-list name: the advice line, executed, makes weights_only load it."""
    body = b"".join(b"X" + len(q).to_bytes(4, "little") + q.encode() + b"c" + q.rsplit(".", 1)[0].encode()
                    + b"\n" + q.rsplit(".", 1)[1].encode() + b"\n" for q in sorted(DATA))
    path = torch_zip(tmp_path / "data.pt", b"\x80\x02}(" + body + b"u.")
    report = check_file(path)
    assert not report.verdict.loads
    assert not torch_verdict(path)[0]
    assert {report.verdict.categories[q] for q in DATA} == {"data"}
    line = report.verdict.advice
    assert line == safe_globals_line(sorted(DATA))
    script = f"import torch; {line}; torch.load({str(path)!r}, weights_only=True)"
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_advice_is_never_given_for_names_off_the_data_list() -> None:
    for q in ["numpy.savetxt", "numpy.memmap", "numpy.ctypeslib.load_library", "os.system", "mylab.Config",
              "torchvision.models.resnet.ResNet"]:
        with pytest.raises(ValueError, match="not on the data list"):
            safe_globals_line([q])
    assert numpy.savetxt.__module__ and "numpy.savetxt" not in DATA
