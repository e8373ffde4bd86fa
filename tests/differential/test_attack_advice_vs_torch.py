"""The ``add_safe_globals`` advice (issue #11): given only for names on the exact data list, and
following it to the letter makes ``torch.load(weights_only=True)`` load the file.

The old CK104 line advised allowlisting any lower-case ``numpy.*`` callable (``numpy.savetxt``
then writes the attacker's file under weights_only=True: tests/differential/test_attack_numpy_vs_torch.py).
Here every name on the data list is put in a torch.save-shaped archive; a throwaway subprocess
runs exactly the line ckptlint printed, then ``torch.load(weights_only=True)``. Names of every
other category, spelled the ways an attacker spells them, never get the advice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ckptlint.checker import FileReport, check_file
from ckptlint.safety.names import DATA


def archive(path: Path, module: str, name: str, proto: int = 2) -> Path:
    """``{'a': <module.name>}``: the global is only referenced, never called."""
    body = b"}(X\x01\x00\x00\x00ac" + module.encode() + b"\n" + name.encode() + b"\nu."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80" + bytes([proto]) + body)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


def advice_lines(report: FileReport) -> list[str]:
    assert report.verdict is not None
    lines = [f.fix for f in report.findings if f.fix and "add_safe_globals" in f.fix]
    return lines + ([report.verdict.advice] if "add_safe_globals" in report.verdict.advice else [])


PROOF = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import torch
    out = {}
    for item in json.loads(sys.argv[1]):
        torch.serialization.clear_safe_globals()
        try:
            exec(item["advice"], {"torch": torch})
            torch.load(item["path"], weights_only=True)
            out[item["path"]] = "loaded"
        except Exception as e:
            out[item["path"]] = f"{type(e).__name__}: {str(e)[:200]}"
    print(json.dumps(out))
""")


def _spellings(qualname: str) -> list[tuple[str, str, int]]:
    module, name = qualname.rsplit(".", 1)
    out = [(module, name, 2)]
    if module == "builtins":
        out.append(("__builtin__", name, 2))  # the protocol-2 spelling torch maps to builtins
    return out


def test_following_the_advice_loads_every_data_name(tmp_path: Path) -> None:
    items = []
    for i, q in enumerate(sorted(DATA)):
        for j, (module, name, proto) in enumerate(_spellings(q)):
            path = archive(tmp_path / f"d{i}_{j}.pt", module, name, proto)
            report = check_file(path)
            assert report.verdict is not None and report.verdict.loads is False, q  # torch refuses it unasked
            assert not [f for f in report.findings if f.severity == "error"], (q, report.findings)
            lines = advice_lines(report)
            assert lines, f"no add_safe_globals advice for {q}"
            items.append({"path": str(path), "advice": lines[0], "name": q})
    proc = subprocess.run([sys.executable, "-c", PROOF, json.dumps(items)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = {it["name"]: (it["advice"], result[it["path"]]) for it in items if result[it["path"]] != "loaded"}
    assert failed == {}


NEVER_ADVISED = [
    # dangerous, spelled directly, through model packages and through data names
    ("os", "system"), ("posix", "system"), ("numpy", "savetxt"), ("numpy", "memmap"), ("numpy", "save"),
    ("numpy.testing._private.utils", "runstring"), ("numpy.ctypeslib", "load_library"), ("numpy", "load"),
    ("torchvision.models.resnet", "torch.os.system"), ("argparse", "_os.system"),
    ("collections", "OrderedDict.__init__.__globals__.get"), ("builtins", "len.__self__.exec"),
    ("builtins", "getattr"), ("builtins", "eval"), ("pathlib", "Path.write_text"), ("numpy", "ndarray.tofile"),
    ("datetime", "datetime.__reduce__"), ("uuid", "_uuid"),
    # unknown (lower-case numpy names off the list, user code) and model classes
    ("numpy", "sum"), ("numpy", "fromstring"), ("mylab.config", "TrainConfig"),
    ("torch.nn.modules.linear", "Linear"), ("torchvision.models.resnet", "ResNet"),
]


@pytest.mark.parametrize("module,name", NEVER_ADVISED)
def test_no_advice_for_names_off_the_data_list(module: str, name: str, tmp_path: Path) -> None:
    report = check_file(archive(tmp_path / "x.pt", module, name))
    assert f"{module}.{name}" not in DATA
    assert advice_lines(report) == []
    assert [f for f in report.findings if f.severity == "error"], report.findings
