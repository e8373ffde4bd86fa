"""TorchScript code analysis without torch: sources written the way torch.jit.save prints them.

What torch itself runs at load is proven with real archives and marker files in
tests/differential/test_torchscript_vs_torch.py; here each construct is checked on
hand-written sources (as an attacker would write them into ``code/``).
"""

from __future__ import annotations

import json
import pickle
import textwrap
import zipfile
from pathlib import Path

from ckptlint.checker import check_file
from ckptlint.formats.torchscript_code import CodeFacts, analyze_sources
from ckptlint.rules.torchscript import judge

_HEAD = """\
class M(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  p : __torch__.Payload
  def forward(self: __torch__.M,
    x: Tensor) -> Tensor:
    return torch.relu(x)
"""


def _analyze(code: str, extra: dict[str, str] | None = None) -> CodeFacts:
    sources: list[tuple[str, str, bytes | None, str | None]] = [
        ("a/code/__torch__.py", "__torch__", textwrap.dedent(code).encode(), None)]
    for member, src in (extra or {}).items():
        qualifier = member.split("/code/", 1)[1][:-3].replace("/", ".")
        sources.append((member, qualifier, textwrap.dedent(src).encode(), None))
    return analyze_sources(sources)


def _at_load(facts: CodeFacts) -> dict[str, str]:
    return {o.op: o.entry for o in facts.ops if o.at_load}


def _call_time(facts: CodeFacts) -> set[str]:
    return {o.op for o in facts.ops if not o.at_load}


def test_setstate_and_the_methods_it_calls_run_at_load() -> None:
    facts = _analyze(_HEAD + """\
class Payload:
  path : str
  def __getstate__(self: __torch__.Payload) -> Tuple[str, int]:
    return (self.path, 0)
  def __setstate__(self: __torch__.Payload,
    state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
    _0 = (self).helper()
    return None
  def helper(self: __torch__.Payload) -> NoneType:
    _1 = torch.ones([2])
    path = self.path
    torch.save(_1, path)
    return None
""")
    assert facts.entries == ["__torch__.Payload.__setstate__"]
    assert _at_load(facts) == {"aten::ones": "__torch__.Payload.__setstate__",
                               "aten::save": "__torch__.Payload.__setstate__"}
    save = next(o for o in facts.ops if o.op == "aten::save")
    assert (save.member, save.line) == ("a/code/__torch__.py", 21)
    assert _call_time(facts) == {"aten::relu"}  # forward runs only when the model is called
    assert facts.unread == []


def test_default_arguments_and_class_constants_run_at_load() -> None:
    facts = _analyze(_HEAD + """\
  def unused(self: __torch__.M, x: int=__torch__.evil()) -> int:
    return x
class Payload:
  kk : Final[int] = __torch__.other()
def evil() -> int:
  ops.aten.save(torch.ones([1]), "/tmp/x")
  return 1
def other() -> int:
  return torch.len(torch.from_file("/etc/passwd", False, 3))
""")
    loads = _at_load(facts)
    assert loads["aten::save"] == "default argument of __torch__.M.unused"
    assert loads["aten::from_file"] == "class constant __torch__.Payload.kk"
    assert "default argument of __torch__.M.unused" in facts.entries


def test_autograd_and_ops_spellings_resolve_to_one_operator() -> None:
    # BuiltinModule::attr answers "autograd" with the aten module, whatever namespace it hangs off.
    facts = _analyze("""\
class P:
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    torch.autograd.save(torch.ones([1]), "/tmp/a")
    ops.quantized.autograd.autograd.from_file("/tmp/b")
    ops.myext.run_shell("id")
    ops.c10d.barrier()
    return None
""")
    assert set(_at_load(facts)) == {"aten::save", "aten::ones", "aten::from_file", "myext::run_shell",
                                    "c10d::barrier"}


def test_method_calls_follow_attribute_types_precisely() -> None:
    facts = _analyze("""\
class P:
  helper : __torch__.sub.Writer
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    h = self.helper
    h.run()
    return None
""", {"a/code/__torch__/sub.py": """\
class Writer:
  def run(self: __torch__.sub.Writer) -> NoneType:
    torch.save(torch.zeros([1]), "/tmp/w")
    return None
class Decoy:
  def run(self: __torch__.sub.Decoy) -> NoneType:
    print("not reached at load")
    return None
"""})
    assert _at_load(facts) == {"aten::save": "__torch__.P.__setstate__", "aten::zeros": "__torch__.P.__setstate__"}
    assert _call_time(facts) == {"prim::Print"}


def test_unknown_receivers_follow_every_method_of_that_name() -> None:
    facts = _analyze("""\
class P:
  items : List[Any]
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    (self.items[0]).run()
    return None
class A:
  def run(self: __torch__.A) -> NoneType:
    torch.save(torch.zeros([1]), "/tmp/w")
    return None
""")
    assert "aten::save" in _at_load(facts)


def test_nested_functions_fork_and_aliases_are_scanned() -> None:
    facts = _analyze("""\
class P:
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    def __forked_function():
      return ops.aten.save(torch.ones([1]), "/tmp/f")
    fut = fork(__forked_function)
    t = torch
    t.from_file("/etc/passwd")
    return None
""")
    loads = _at_load(facts)
    assert "aten::save" in loads
    assert "torch" in loads  # the alias itself: ckptlint cannot follow it to one operator
    assert judge("torch") is not None and judge("torch")[0] == "unknown"  # type: ignore[index]


def test_custom_classes_are_named() -> None:
    facts = _analyze("""\
class P:
  pg : __torch__.torch.classes.dist_c10d.TCPStore
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    store = __torch__.torch.classes.dist_c10d.TCPStore("evil.example", 80)
    packed = __torch__.torch.classes.quantized.LinearPackedParamsBase
    return None
""")
    loads = _at_load(facts)
    assert "torch.classes.dist_c10d.TCPStore" in loads
    assert judge("torch.classes.dist_c10d.TCPStore")[0] == "dangerous"  # type: ignore[index]
    assert judge("torch.classes.quantized.LinearPackedParamsBase") is None


def test_unparseable_code_is_reported_not_skipped() -> None:
    facts = analyze_sources([("a/code/__torch__.py", "__torch__", b"class P:\n  def __setstate__(self, :\n", None),
                             ("a/code/x.py", "x", b"\xff\xfe", None),
                             ("a/code/y.py", "y", None, "inflates past the limit")])
    assert len(facts.unread) == 3
    assert facts.unread[0].startswith("a/code/__torch__.py: not parseable")
    assert facts.unread[2] == "a/code/y.py: inflates past the limit"


def test_judge_by_exact_name() -> None:
    assert judge("aten::add") is None
    assert judge("prim::Print") is None
    assert judge("quantized::linear") is None
    assert judge("aten::save") == ("dangerous", "writes a file (torch.save)")
    assert judge("aten::from_file")[0] == "dangerous"  # type: ignore[index]
    assert judge("prim::rpc_async")[0] == "dangerous"  # type: ignore[index]
    assert judge("symm_mem::nvshmem_put")[0] == "dangerous"  # type: ignore[index]
    assert judge("myext::anything")[0] == "unknown"  # type: ignore[index]
    assert judge("torch.classes.myext.Thing")[0] == "unknown"  # type: ignore[index]


# ----------------------------------------------------------------------------- whole archives


def _archive(path: Path, code: dict[str, str], folder: str = "arch", data: bytes | None = None) -> Path:
    """A TorchScript-shaped zip: data.pkl, constants.pkl and code members (no torch needed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{folder}/data.pkl", data if data is not None else pickle.dumps({}, protocol=2))
        z.writestr(f"{folder}/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr(f"{folder}/version", "3\n")
        for name, src in code.items():
            z.writestr(f"{folder}/{name}", textwrap.dedent(src))
    return path


_HOSTILE = """\
class P:
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    torch.save(torch.ones([1]), "/tmp/marker")
    return None
"""


def test_check_reports_load_time_code_as_an_error(tmp_path: Path) -> None:
    report = check_file(_archive(tmp_path / "m.pt", {"code/__torch__.py": _HOSTILE}))
    assert report.format == "torchscript"
    ck108 = [f for f in report.findings if f.code == "CK108"]
    assert [(f.severity, f.location) for f in ck108] == [("error", "arch/code/__torch__.py:3")]
    assert "aten::save" in ck108[0].message and "__torch__.P.__setstate__" in ck108[0].message


def test_case_folded_code_paths_are_read(tmp_path: Path) -> None:
    # miniz finds code/__torch__.py under any ASCII case.
    report = check_file(_archive(tmp_path / "m.pt", {"CODE/__Torch__.py": _HOSTILE}))
    assert [f.severity for f in report.findings if f.code == "CK108"] == ["error"]


def test_call_time_code_is_a_warning_and_harmless_code_is_silent(tmp_path: Path) -> None:
    report = check_file(_archive(tmp_path / "m.pt", {"code/__torch__.py": _HEAD + """\
  def dump(self: __torch__.M) -> NoneType:
    torch.save(torch.ones([1]), "/tmp/x")
    return None
class Payload:
  def __setstate__(self: __torch__.Payload, s: int) -> NoneType:
    _0 = torch.add(torch.ones([1]), 1)
    return None
"""}))
    assert [(f.code, f.severity) for f in report.findings if f.code == "CK108"] == [("CK108", "warning")]


def test_unreadable_code_is_an_error(tmp_path: Path) -> None:
    report = check_file(_archive(tmp_path / "m.pt", {"code/__torch__.py": "class P(:\n"}))
    ck108 = [f for f in report.findings if f.code == "CK108"]
    assert [f.severity for f in ck108] == ["error"] and "cannot read" in ck108[0].message


def test_inspect_json_lists_the_operations(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = _archive(tmp_path / "m.pt", {"code/__torch__.py": _HOSTILE})
    result = cli("inspect", path, "--format", "json")
    doc = json.loads(result.stdout)
    files = doc["files"] if isinstance(doc, dict) and "files" in doc else doc
    inv = files[0] if isinstance(files, list) else files
    code = inv["facts"]["extra"]["torchscript_code"]
    assert code["entry_points"] == ["__torch__.P.__setstate__"]
    assert {"op": "aten::save", "member": "arch/code/__torch__.py", "line": 3,
            "entry": "__torch__.P.__setstate__", "at_load": True} in code["operations"]
    assert code["code_members"] == ["arch/code/__torch__.py"] and code["unreadable"] == []


def test_methods_reached_through_aliases_and_getattr() -> None:
    facts = _analyze("""\
class P:
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    m = self.first
    m()
    fut = fork(self.second)
    getattr(self, "third")()
    return None
  def first(self: __torch__.P) -> NoneType:
    torch.save(torch.ones([1]), "/tmp/1")
  def second(self: __torch__.P) -> NoneType:
    torch.from_file("/tmp/2")
  def third(self: __torch__.P) -> NoneType:
    ops.myext.shell("id")
  def fourth(self: __torch__.P) -> NoneType:
    torch.zeros([1])
""")
    assert {"aten::save", "aten::from_file", "myext::shell"} <= set(_at_load(facts))
    assert _call_time(facts) == {"aten::zeros"}


def test_code_past_the_bound_is_unreadable_not_skipped(tmp_path: Path) -> None:
    from ckptlint.formats.torchscript_code import MAX_CODE_BYTES

    filler = "# padding\n" * (MAX_CODE_BYTES // 10 + 1)
    report = check_file(_archive(tmp_path / "m.pt", {"code/__torch__.py": filler + _HOSTILE}))
    ck108 = [f for f in report.findings if f.code == "CK108"]
    assert [f.severity for f in ck108] == ["error"]
    assert "MiB of TorchScript source" in ck108[0].message


def test_pathological_nesting_is_reported_not_raised() -> None:
    head = "class P:\n  def __setstate__(self: __torch__.P, s: int) -> NoneType:\n"
    deep = head + "    x = unchecked_cast(" + "List[" * 3000 + "int" + "]" * 3000 + ", s)\n"
    facts = analyze_sources([("a/code/__torch__.py", "__torch__", deep.encode(), None)])
    assert facts.unread and facts.unread[0].startswith("a/code/__torch__.py: ")


def test_interfaces_unions_and_special_methods_over_approximate() -> None:
    facts = _analyze("""\
class Runner(Interface):
  def run(self) -> int:
    pass
class Impl:
  def run(self: __torch__.Impl) -> int:
    torch.save(torch.ones([1]), "/tmp/i")
    return 1
class Other:
  def go(self: __torch__.Other) -> int:
    torch.from_file("/tmp/u")
    return 1
  def __getitem__(self: __torch__.Other, i: int) -> int:
    ops.myext.evil()
    return 1
  def __init__(self: __torch__.Other) -> NoneType:
    torch.zeros([1])
class P:
  r : __torch__.Runner
  u : Union[__torch__.Other, int]
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    _0 = (self.r).run()
    _1 = (self.u).go()
    return None
""")
    loads = _at_load(facts)
    assert {"aten::save", "aten::from_file", "myext::evil"} <= set(loads)
    assert loads["myext::evil"].startswith("__torch__.Other.__getitem__ (called implicitly")
    assert "aten::zeros" in _call_time(facts)  # __init__ runs only where code constructs one


def test_pickled_custom_class_objects_are_judged(tmp_path: Path) -> None:
    # torch.jit.load builds these with the class's native __setstate__ (the library must be loaded).
    data = b"\x80\x02c__torch__.torch.classes.myext\nFoo\n)\x81}b."
    report = check_file(_archive(tmp_path / "m.pt", {}, data=data))
    ck108 = [f for f in report.findings if f.code == "CK108"]
    assert [(f.severity, f.location) for f in ck108] == [("error", "arch/data.pkl@2")]
    assert "torch.classes.myext.Foo" in ck108[0].message
    quantized = b"\x80\x02c__torch__.torch.classes.quantized\nLinearPackedParamsBase\n)\x81}b."
    assert [f for f in check_file(_archive(tmp_path / "q.pt", {}, data=quantized)).findings if f.code == "CK108"] == []


def test_annotation_entries_are_types_not_constants() -> None:
    facts = _analyze("""\
class Seq(Module):
  __annotations__["0"] = __torch__.torch.nn.modules.linear.Linear
  def forward(self: __torch__.Seq, x: Tensor) -> Tensor:
    return x
""")
    assert facts.entries == [] and facts.ops == []


def test_a_name_bound_twice_is_not_resolved_to_one_class() -> None:
    facts = _analyze("""\
class A:
  def run(self: __torch__.A) -> NoneType:
    return None
class B:
  def run(self: __torch__.B) -> NoneType:
    torch.save(torch.ones([1]), "/tmp/b")
    return None
  def go(self: __torch__.B) -> NoneType:
    ops.myext.evil()
    return None
class P:
  a : __torch__.A
  bs : List[__torch__.B]
  def __setstate__(self: __torch__.P, s: int) -> NoneType:
    h = self.a
    h.run()
    for h in self.bs:
      h.run()
    def inner(x: __torch__.B) -> NoneType:
      x.go()
    x = self.a
    return None
""")
    assert {"aten::save", "myext::evil"} <= set(_at_load(facts))
