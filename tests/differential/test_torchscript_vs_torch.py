"""TorchScript code against torch itself: what ``torch.load(weights_only=False)`` runs, proven by marker files.

Each hostile archive is built the way an attacker would: ``torch.jit.script`` a class whose
``__setstate__`` writes a file, or take a real archive and edit its ``code/__torch__.py`` (default
arguments, class constants, ``torch.autograd.save``, ``fork``, method aliases, ``getattr``,
``t = torch; t.save``, ``with``/``len``/``+`` on a class with special methods; and two that torch
does *not* run at load: ``forward``, an uncalled method).
A throwaway subprocess loads every archive with ``torch.load(path, weights_only=False)``
(which hands them to ``torch.jit.load``) and reports which marker files appeared; the
payloads are harmless (``torch.save`` of a one-element tensor under the test's tmp dir).

* every archive whose marker torch writes at load has a CK108 *error* naming ``aten::save``
  at load (no payload gets past);
* where CK108 says "when called" (warning), torch wrote no marker at load;
* ``weights_only=True`` refuses them all and writes nothing;
* scripted and traced torchvision models (plain and quantized) and a harmless ``__setstate__``
  have no error-level finding at all;
* the classification tables name operators and classes torch really registers, and every
  namespace torch registers is classified.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision import models as M
from torchvision.models import quantization as Q

from ckptlint.checker import check_file
from ckptlint.rules import torchscript as rule

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script/save are deprecated


# Run as __main__ in a throwaway process, so that the classes are __torch__.Holder and __torch__.Payload
# (code/__torch__.py), the names the hand-edited variants below use.
_BUILDER = """
import sys, warnings
warnings.simplefilter("ignore")
import torch

@torch.jit.script
class Payload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __getstate__(self) -> tuple[str, int]:
        return (self.path, 0)

    def __setstate__(self, state: tuple[str, int]) -> None:
        self.path = state[0]
        self.helper()

    def helper(self) -> None:
        torch.save(torch.ones(1), self.path)

class Holder(torch.nn.Module):
    def __init__(self, p: Payload) -> None:
        super().__init__()
        self.p = p
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)

torch.jit.save(torch.jit.script(Holder(Payload(sys.argv[1]))), sys.argv[2])
"""


@torch.jit.script
class Harmless:
    def __init__(self, n: int) -> None:
        self.n = n

    def __getstate__(self) -> int:
        return self.n

    def __setstate__(self, n: int) -> None:
        self.n = int(torch.add(torch.ones(1), n).item())
        print("harmless setstate ran", self.n)


class Holder(torch.nn.Module):
    def __init__(self, p: object) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _save_scripted(path: Path, payload: object) -> Path:
    torch.jit.save(torch.jit.script(Holder(payload)), str(path))
    return path


def _rewrite(src: Path, dst: Path, code: str) -> Path:
    """Replace the archive's ``code/__torch__.py`` (and drop its debug record), keep the rest."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            if name.endswith("code/__torch__.py.debug_pkl"):
                continue
            data = textwrap.dedent(code).encode() if name.endswith("code/__torch__.py") else zin.read(name)
            zout.writestr(name, data)
    return dst


_HOLDER = """\
class Holder(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  p : __torch__.Payload
  lin : __torch__.torch.nn.modules.linear.Linear
  def forward(self: __torch__.Holder,
    x: Tensor) -> Tensor:
    lin = self.lin
    return (lin).forward(x, )
"""
_PAYLOAD_HEAD = """\
class Payload:
  path : str
  def __getstate__(self: __torch__.Payload) -> Tuple[str, int]:
    path = self.path
    return (path, 0)
"""
_PLAIN_SETSTATE = """\
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
    return None
"""


_INDIRECT = {
    "method_alias": "    m = self.helper2\n    m()\n",
    "getattr_literal": "    getattr(self, \"helper2\")()\n",
    "fork_method": "    fut = fork(self.helper2)\n    _0 = torch.wait(fut)\n",
    "torch_alias": "    t = torch\n    t.save(torch.ones([1]), \"MARKER\")\n",
    "ops_alias": "    o = ops.aten\n    o.save(torch.ones([1]), \"MARKER\")\n",
}
"""Ways to reach an operator from ``__setstate__`` without writing ``torch.save(...)`` in it."""


def _indirect(name: str, body: str, marker: str) -> str:
    return _HOLDER + _PAYLOAD_HEAD + f"""\
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
{body.replace("MARKER", marker)}    return None
  def helper2(self: __torch__.Payload) -> int:
    torch.save(torch.ones([1]), "{marker}")
    return 1
"""


_IMPLICIT = {
    "with_enter": ("    c = __torch__.Ctx()\n    with c:\n      pass\n", "__enter__"),
    "len_dunder": ("    c = __torch__.Ctx()\n    n = len(c)\n", "__len__"),
    "operator_dunder": ("    c = __torch__.Ctx()\n    n = c + 1\n", "__add__"),
}
"""Special methods TorchScript calls without their names appearing in ``__setstate__``."""


def _implicit(body: str, dunder: str, marker: str) -> str:
    def act(name: str) -> str:
        return f'torch.save(torch.ones([1]), "{marker}")' if name == dunder else "self.n = 2"

    return _HOLDER + _PAYLOAD_HEAD + f"""\
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
{body}    return None
class Ctx:
  n : int
  def __init__(self: __torch__.Ctx) -> NoneType:
    self.n = 1
    return None
  def __enter__(self: __torch__.Ctx) -> NoneType:
    {act("__enter__")}
    return None
  def __exit__(self: __torch__.Ctx, a: Any, b: Any, c: Any) -> NoneType:
    return None
  def __len__(self: __torch__.Ctx) -> int:
    {act("__len__")}
    return 1
  def __add__(self: __torch__.Ctx, o: int) -> int:
    {act("__add__")}
    return 1
"""


def _variants(marker: Callable[[str], str]) -> dict[str, tuple[str, bool]]:
    """name -> (code/__torch__.py, whether torch writes the marker at load)."""
    return {
        **{name: (_indirect(name, body, marker(name)), True) for name, body in _INDIRECT.items()},
        **{name: (_implicit(body, dunder, marker(name)), True) for name, (body, dunder) in _IMPLICIT.items()},
        "default_argument": (_HOLDER + """\
  def unused(self: __torch__.Holder, x: int=__torch__.evil()) -> int:
    return x
""" + _PAYLOAD_HEAD + _PLAIN_SETSTATE + f"""\
def evil() -> int:
  torch.save(torch.ones([1]), "{marker('default_argument')}")
  return 1
""", True),
        "class_constant": (_HOLDER + _PAYLOAD_HEAD + """\
  kk : Final[int] = __torch__.evil()
""" + _PLAIN_SETSTATE + f"""\
def evil() -> int:
  torch.save(torch.ones([1]), "{marker('class_constant')}")
  return 1
""", True),
        "autograd_alias": (_HOLDER + _PAYLOAD_HEAD + f"""\
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
    torch.autograd.save(torch.ones([1]), "{marker('autograd_alias')}")
    return None
""", True),
        "forked_nested_def": (_HOLDER + _PAYLOAD_HEAD + f"""\
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
    def __forked_function():
      return ops.aten.save(torch.ones([1]), "{marker('forked_nested_def')}")
    fut = fork(__forked_function)
    _0 = torch.wait(fut)
    return None
""", True),
        "uncalled_method": (_HOLDER + _PAYLOAD_HEAD + _PLAIN_SETSTATE + f"""\
class Side:
  def go(self: __torch__.Side) -> NoneType:
    torch.save(torch.ones([1]), "{marker('uncalled_method')}")
    return None
""", False),
        "forward_only": (_HOLDER.replace("    lin = self.lin\n", f"""\
    torch.save(torch.ones([1]), "{marker('forward_only')}")
    lin = self.lin
""") + _PAYLOAD_HEAD + _PLAIN_SETSTATE, False),
    }


_LOADER = """
import json, os, sys, warnings
warnings.simplefilter("ignore")
import torch
weights_only = sys.argv[1] == "1"
out = {}
for path, marker in json.loads(sys.argv[2]):
    try:
        torch.load(path, weights_only=weights_only)
        err = None
    except Exception as e:
        err = type(e).__name__
    out[path] = [os.path.exists(marker), err]
print(json.dumps(out))
"""


def _load_all(run_python: Callable[..., object], cases: list[tuple[str, str]],
              weights_only: bool) -> dict[str, list[Any]]:
    proc = run_python("-c", _LOADER, "1" if weights_only else "0", json.dumps(cases))
    assert proc.returncode == 0, proc.stderr  # type: ignore[attr-defined]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined,no-any-return]


def test_what_torch_runs_at_load_is_a_ck108_error(tmp_path: Path, run_python: Callable[..., object]) -> None:
    def marker(name: str) -> str:
        return str(tmp_path / f"MARKER_{name}")

    base = tmp_path / "scripted_setstate.pt"
    (tmp_path / "builder.py").write_text(_BUILDER)  # TorchScript compiles from the source file
    built = run_python(tmp_path / "builder.py", marker("scripted_setstate"), str(base))
    assert built.returncode == 0, built.stderr  # type: ignore[attr-defined]
    assert any(n.endswith("/code/__torch__.py") for n in zipfile.ZipFile(base).namelist())
    files: dict[str, tuple[Path, bool]] = {"scripted_setstate": (base, True)}
    for name, (code, runs) in _variants(marker).items():
        files[name] = (_rewrite(base, tmp_path / f"{name}.pt", code), runs)
    cases = [(str(p), marker(name)) for name, (p, _) in files.items()]

    refused = _load_all(run_python, cases, weights_only=True)  # first: nothing may be written yet
    assert all(err is not None for _, err in refused.values()), refused
    assert not any(hit for hit, _ in refused.values())
    loaded = _load_all(run_python, cases, weights_only=False)

    for name, (path, runs) in files.items():
        hit, err = loaded[str(path)]
        assert hit == runs, (name, hit, err)  # the archive is built as intended: torch does (not) run it
        report = check_file(path)
        assert report.format == "torchscript"
        saves = [f for f in report.findings if f.code == "CK108" and "aten::save" in f.message]
        assert saves, name
        if hit:
            assert any(f.severity == "error" and "at load" in f.message for f in saves), (name, saves)
        if any(f.severity == "warning" for f in saves) and not any(f.severity == "error" for f in saves):
            assert not hit, name


def test_harmless_setstate_runs_and_is_not_flagged(tmp_path: Path, run_python: Callable[..., object]) -> None:
    path = _save_scripted(tmp_path / "harmless.pt", Harmless(3))
    proc = run_python("-c", "import sys, warnings, torch; warnings.simplefilter('ignore'); "
                      "torch.load(sys.argv[1], weights_only=False)", str(path))
    assert proc.returncode == 0 and "harmless setstate ran 4" in proc.stdout  # type: ignore[attr-defined]
    report = check_file(path)
    assert [f for f in report.findings if f.code == "CK108"] == []
    ops = report.inventory.facts.extra["torchscript_code"]["operations"]  # type: ignore[union-attr]
    at_load = {o["op"] for o in ops if o["at_load"]}
    assert {"aten::add", "prim::Print"} <= at_load


def _quantized_mobilenet() -> torch.nn.Module:
    m = Q.mobilenet_v2(weights=None, quantize=False).eval()
    m.fuse_model()
    m.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    torch.ao.quantization.prepare(m, inplace=True)
    m(torch.randn(1, 3, 32, 32))
    return torch.ao.quantization.convert(m, inplace=True)


TV: dict[str, Callable[[], torch.nn.Module]] = {
    "resnet18": lambda: M.resnet18(),
    "mobilenet_v3_small": lambda: M.mobilenet_v3_small(),
    "squeezenet1_1": lambda: M.squeezenet1_1(),
    "quantized_mobilenet_v2": _quantized_mobilenet,
}


@pytest.mark.parametrize(("name", "how"), [(n, "script") for n in TV] + [("resnet18", "trace"),
                                                                         ("quantized_mobilenet_v2", "trace")])
def test_torchvision_torchscript_models_have_no_error(name: str, how: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pt"
    model = TV[name]().eval()
    sm = torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.randn(1, 3, 64, 64))
    torch.jit.save(sm, str(path))
    report = check_file(path)
    assert report.format == "torchscript"
    assert [f for f in report.findings if f.severity == "error"] == []
    assert [f for f in report.findings if f.code == "CK108"] == []
    code = report.inventory.facts.extra["torchscript_code"]  # type: ignore[union-attr]
    assert code["unreadable"] == []
    assert any(o["op"] in ("aten::conv2d", "quantized::conv2d", "aten::_convolution", "quantized::conv2d_relu")
               for o in code["operations"])


# ----------------------------------------------------------------------------- the tables, against torch


_REGISTRY = """
import json, re, warnings
warnings.simplefilter("ignore")
import torch, torchvision
ops = [[s.name, [[a.name, str(a.type)] for a in s.arguments]] for s in torch._C._jit_get_all_schemas()]
text = " ".join(str(s) for s in torch._C._jit_get_custom_class_schemas())
classes = sorted(set(re.findall(r"__torch__\\.torch\\.classes\\.\\w+\\.\\w+", text)))
print(json.dumps({"ops": ops, "classes": classes}))
"""


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, list[Any]]:
    """What a fresh process with torch and torchvision imported registers (nothing else imported)."""
    proc = subprocess.run([sys.executable, "-c", _REGISTRY], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _schemas() -> list[tuple[str, list[list[str]]]]:
    return [(name, args) for name, args in _registry()["ops"]]


def test_dangerous_operators_are_real_torch_operators() -> None:
    names = {name for name, _ in _schemas()}
    assert set(rule.DANGEROUS_OPS) <= names


def test_every_torch_operator_namespace_is_classified() -> None:
    namespaces = {name.split("::", 1)[0] for name, _ in _schemas()}
    classified = rule.KNOWN_NAMESPACES | set(rule.DANGEROUS_NAMESPACES) | {"debugprims"}
    assert {"aten", "prim", "quantized", "c10d", "torchvision"} <= namespaces
    assert namespaces - classified == set()
    for name, _ in _schemas():
        if name.split("::", 1)[0] == "debugprims":
            assert name in rule.DANGEROUS_OPS


def test_every_operator_taking_a_file_name_is_dangerous() -> None:
    takers = [name for name, args in _schemas()
              if any(a in ("filename", "path", "file", "url", "host") and "str" in t for a, t in args)]
    assert {"aten::save", "aten::from_file", "image::read_file", "image::write_file"} <= set(takers)
    for name in takers:
        assert rule.judge(name) is not None and rule.judge(name)[0] == "dangerous", name  # type: ignore[index]


def test_every_torch_custom_class_namespace_is_classified() -> None:
    namespaces = {m.split(".")[3] for m in _registry()["classes"]}
    assert namespaces
    assert namespaces - rule.KNOWN_CLASS_NAMESPACES - set(rule.DANGEROUS_CLASS_NAMESPACES) == set()
    assert "c10d" in namespaces and rule.judge("torch.classes.c10d.ProcessGroup")[0] == "dangerous"  # type: ignore[index]


def test_collective_operators_are_dangerous() -> None:
    names = [name for name, _ in _schemas() if name.startswith(("c10d::", "_c10d_functional::", "symm_mem::"))]
    assert names
    for name in names:
        assert rule.judge(name)[0] == "dangerous", name  # type: ignore[index]
