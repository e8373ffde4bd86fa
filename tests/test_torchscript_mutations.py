"""Mutated TorchScript code never raises: every input gives facts, or an unreadable member (a CK108 error)."""

from __future__ import annotations

import ast
import pickle
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptlint.checker import check_file
from ckptlint.formats.torchscript_code import analyze_sources

SEED = b'''class M(Module):
  __parameters__ = []
  p : __torch__.Payload
  def forward(self: __torch__.M, x: Tensor=torch.ones([1])) -> Tensor:
    return (self.p).helper(x, )
class Payload:
  path : str
  kk : Final[int] = __torch__.f()
  def __getstate__(self: __torch__.Payload) -> Tuple[str, int]:
    return (self.path, 0)
  def __setstate__(self: __torch__.Payload, state: Tuple[str, int]) -> NoneType:
    self.path = (state)[0]
    h = self.helper
    with __torch__.Ctx():
      _0 = getattr(self, "helper")(torch.zeros([1]))
    def __forked_function():
      return ops.aten.save(torch.ones([1]), self.path)
    fut = fork(__forked_function)
    return None
  def helper(self: __torch__.Payload, t: Tensor) -> Tensor:
    torch.autograd.save(t, self.path)
    return unchecked_cast(Tensor, t)
def f() -> int:
  return 1
'''

_EDIT = st.tuples(st.integers(0, len(SEED)), st.integers(0, 8), st.binary(max_size=12))


def _mutate(edits: list[tuple[int, int, bytes]]) -> bytes:
    data = SEED
    for pos, cut, insert in edits:
        pos = min(pos, len(data))
        data = data[:pos] + insert + data[pos + cut:]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_EDIT, min_size=1, max_size=4))
def test_mutated_sources_never_raise(edits: list[tuple[int, int, bytes]]) -> None:
    data = _mutate(edits)
    facts = analyze_sources([("a/code/__torch__.py", "__torch__", data, None)])
    assert facts.members == ["a/code/__torch__.py"]
    try:
        ast.parse(data.decode("utf-8"))
        parses = True
    except (SyntaxError, ValueError, UnicodeDecodeError):
        parses = False
    assert bool(facts.unread) == (not parses)  # unreadable exactly when Python's parser refuses it
    lines = data.count(b"\n") + 1
    assert all(o.member == "a/code/__torch__.py" and 1 <= o.line <= lines for o in facts.ops)


def test_the_seed_itself_is_fully_read() -> None:
    facts = analyze_sources([("a/code/__torch__.py", "__torch__", SEED, None)])
    assert facts.unread == []
    at_load = {o.op for o in facts.ops if o.at_load}
    assert {"aten::save", "aten::zeros"} <= at_load


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(_EDIT, min_size=1, max_size=3), st.sampled_from(["code/__torch__.py", "CODE/__torch__.py",
                                                                  "code/__torch__/x.py"]))
def test_mutated_archives_check_without_raising(tmp_path: Path, edits: list[tuple[int, int, bytes]],
                                                member: str) -> None:
    path = tmp_path / "m.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("a/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("a/version", "3\n")
        z.writestr(f"a/{member}", _mutate(edits))
    report = check_file(path)
    assert report.format == "torchscript"
    code = report.inventory.facts.extra["torchscript_code"]  # type: ignore[union-attr]
    assert code["code_members"] == [f"a/{member}"]
    if code["unreadable"]:
        assert any(f.code == "CK108" and f.severity == "error" for f in report.findings)
