"""Fixes are honest and complete: each suggested snippet, run unchanged in a new interpreter, puts
the right checkpoint tensor in every model key, and leaves exactly the keys ckptlint names at
their initial values (compared with a model built from the same seed).

The right mapping is what the test knows it did to the checkpoint (a historical rename, an
inserted BatchNorm that shifts every later layer, transposed Conv1D-style weights, ...), not
what ckptlint inferred. All snippets run in ONE subprocess (one torch import) to keep CI time.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from _compat_oracle import agree, torch_says

import ckptlint
from ckptlint.compat.analyze import CompatAnalysis, analyze
from ckptlint.targets.resolve import live_signature
from ckptlint.targets.signature import Signature

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import compat_models as cm  # noqa: E402 - after the path set-up


@dataclass
class Case:
    saved: Any
    """What torch.save writes."""
    source: dict[str, torch.Tensor]
    """The checkpoint's tensors by the key the user's state_dict has."""
    spec: str
    mapping: dict[str, str]
    """model key -> checkpoint key whose value it must get."""
    initial: set[str]
    """Model keys that must be left at their initial values (and named so by ckptlint)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    transposed: set[str] = field(default_factory=set)
    """Model keys that get their checkpoint tensor transposed."""
    strict: bool = True


def _seeded(factory: Callable[[], torch.nn.Module], seed: int = 7) -> torch.nn.Module:
    torch.manual_seed(seed)
    return factory()


def _renamed(sd: dict[str, torch.Tensor], rename: Callable[[str], str]) -> OrderedDict:
    return OrderedDict((rename(k), v) for k, v in sd.items())


def vgg_shift() -> Case:
    sd = _seeded(cm.mini_vgg).state_dict()
    moves = {"0.0": "0.0", "0.3": "0.4", "0.6": "0.8", "0.8": "0.11", "2": "2"}
    mapping = {f"{new}.{leaf}": f"{old}.{leaf}" for old, new in moves.items() for leaf in ("weight", "bias")}
    bn = {f"0.{i}.{leaf}" for i in (1, 5, 9, 12) for leaf in ("weight", "bias", "running_mean", "running_var")}
    return Case(sd, dict(sd), "compat_models:mini_vgg_bn", mapping, bn, strict=False)


def layernorm_gamma_beta() -> Case:
    sd = _seeded(cm.Normed).state_dict()
    old = _renamed(sd, lambda k: k.replace("norm.weight", "norm.gamma").replace("norm.bias", "norm.beta"))
    mapping = {k: k.replace("norm.weight", "norm.gamma").replace("norm.bias", "norm.beta") for k in sd}
    return Case(old, dict(old), "compat_models:Normed", mapping, set())


def _norm_pair(old_factory: Callable[[], torch.nn.Module], new_factory: Callable[[], torch.nn.Module],
               names: dict[str, str], reverse: bool, spec_old: str, spec_new: str) -> Case:
    """``names``: old key -> new key. ``reverse``: a new-style checkpoint into the old-style model."""
    if not reverse:
        sd = _seeded(old_factory).state_dict()
        return Case(sd, dict(sd), spec_new, {names.get(k, k): k for k in sd}, set())
    sd = _seeded(new_factory).state_dict()
    back = {v: k for k, v in names.items()}
    return Case(sd, dict(sd), spec_old, {back.get(k, k): k for k in sd}, set())


WN = {"0.weight_g": "0.parametrizations.weight.original0", "0.weight_v": "0.parametrizations.weight.original1"}
SN = {"0.weight_orig": "0.parametrizations.weight.original", "0.weight_u": "0.parametrizations.weight.0._u",
      "0.weight_v": "0.parametrizations.weight.0._v"}


def weight_norm_new_to_old() -> Case:
    return _norm_pair(cm.weight_normed_old, cm.weight_normed, WN, True, "compat_models:weight_normed_old",
                      "compat_models:weight_normed")


def spectral_old_to_new() -> Case:
    return _norm_pair(cm.spectral_normed_old, cm.spectral_normed, SN, False, "compat_models:spectral_normed_old",
                      "compat_models:spectral_normed")


def spectral_new_to_old() -> Case:
    return _norm_pair(cm.spectral_normed_old, cm.spectral_normed, SN, True, "compat_models:spectral_normed_old",
                      "compat_models:spectral_normed")


def densenet_legacy() -> Case:
    import re

    sd = _seeded(cm.mini_densenet).state_dict()
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    legacy = _renamed(sd, lambda k: pattern.sub(r"\1.\2", k))
    legacy._metadata = OrderedDict((pattern.sub(r"\1.\2", k + ".weight")[: -len(".weight")], v)  # type: ignore[attr-defined]
                                   for k, v in sd._metadata.items())
    assert any(".norm.1." in k for k in legacy)
    return Case(legacy, dict(legacy), "compat_models:mini_densenet", {k: pattern.sub(r"\1.\2", k) for k in sd},
                set())


def conv1d_transposed() -> Case:
    sd = _seeded(cm.Conv1DStyle).state_dict()
    stored = OrderedDict((k, v.t().contiguous() if k.endswith("weight") else v) for k, v in sd.items())
    return Case(stored, dict(stored), "compat_models:Conv1DStyle", {k: k for k in sd}, set(),
                transposed={"c_fc.weight", "c_proj.weight"})


def integer_key_path() -> Case:
    sd = _seeded(cm.ModelA).state_dict()
    inner = _renamed(sd, lambda k: "module." + k)
    return Case({"state": {5: inner}, "step": 3}, dict(inner), "compat_models:ModelA",
                {k: "module." + k for k in sd}, set())


def whole_module_pickle() -> Case:
    m = _seeded(cm.ModelA)
    sd = m.state_dict()
    rename = {"conv1": "backbone_conv", "fc": "new_fc"}
    mapping = {rename.get(k.split(".")[0], k.split(".")[0]) + "." + k.split(".", 1)[1]: k for k in sd}
    return Case(m, dict(sd), "compat_models:ModelB", mapping, set())


def whole_torchvision_pickle() -> Case:
    m = _seeded(cm.mobilenet_small_5)
    sd = m.state_dict()
    head = {"classifier.3.weight", "classifier.3.bias"}
    return Case(m, dict(sd), "compat_models:mobilenet_small_7", {k: k for k in sd if k not in head}, head,
                strict=False)


def meta_tensor() -> Case:
    sd = _seeded(cm.ModelA).state_dict()
    out = OrderedDict((k, v.to("meta") if k == "fc.bias" else v) for k, v in sd.items())
    return Case(out, dict(out), "compat_models:ModelA", {k: k for k in sd if k != "fc.bias"}, {"fc.bias"},
                strict=False)


def empty() -> Case:
    every = set(cm.ModelA().state_dict()) - {"bn.num_batches_tracked"}  # BatchNorm fills it in (named apart)
    return Case({"state_dict": {}, "epoch": 1}, {}, "compat_models:ModelA", {}, every, strict=False)


CASES: dict[str, Callable[[], Case]] = {f.__name__.replace("_", "-"): f for f in (
    vgg_shift, layernorm_gamma_beta, weight_norm_new_to_old, spectral_old_to_new, spectral_new_to_old,
    densenet_legacy, conv1d_transposed, integer_key_path, whole_module_pickle, whole_torchvision_pickle, meta_tensor,
    empty)}

DRIVER = """
import json, sys, torch
for snippet, out in json.load(open(sys.argv[1])):
    torch.manual_seed(7)
    ns = {"__name__": "__main__"}
    exec(compile(open(snippet).read(), snippet, "exec"), ns)
    torch.save(ns["model"].state_dict(), out)
"""


@dataclass
class Ran:
    case: Case
    live: CompatAnalysis
    snap: CompatAnalysis
    loaded: dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def ran(module_tmp: Path) -> dict[str, Ran]:
    """Every case analysed, and every snippet run unchanged in one new interpreter."""
    from conftest import python_process

    root = module_tmp
    work: list[tuple[str, str]] = []
    staged: dict[str, tuple[Case, CompatAnalysis, CompatAnalysis, Path]] = {}
    for name, make in CASES.items():
        case = make()
        path = root / f"{name}.pt"
        torch.save(case.saved, path)
        sig, model = live_signature(case.spec, case.kwargs)
        inv = ckptlint.inspect(str(path))
        live = analyze(inv, sig, model=model)
        snap = analyze(inv, Signature.from_json(json.loads(json.dumps(sig.to_json()))))
        assert live.fix is not None, f"{name}: no fix offered ({live.result})"
        # the verdict itself: torch's own, on a real CPU model
        module, _, attr = case.spec.partition(":")
        if isinstance(case.saved, torch.nn.Module):  # a whole-module pickle: its state_dict, in memory
            sd = case.saved.state_dict()
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            for p in live.state_dict.path:
                sd = sd[p]
        told = torch_says(getattr(__import__(module), attr), sd)
        agree(live, told, f"{name} (live)")
        if snap.exact:
            agree(snap, told, f"{name} (snapshot)")
        snippet = root / f"{name}_snippet.py"
        snippet.write_text(live.fix.snippet)
        out = root / f"{name}_loaded.pt"
        work.append((str(snippet), str(out)))
        staged[name] = (case, live, snap, out)
    jobs = root / "jobs.json"
    jobs.write_text(json.dumps(work))
    proc = python_process("-c", DRIVER, str(jobs), cwd=root, pythonpath=[TESTS])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: Ran(case, live, snap, torch.load(out, weights_only=True))
            for name, (case, live, snap, out) in staged.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_snippet_loads_the_right_value_in_every_key(name: str, ran: dict[str, Ran]) -> None:
    r = ran[name]
    case, fix = r.case, r.live.fix
    assert fix is not None
    assert fix.strict == case.strict, fix.diagnosis
    assert set(fix.random_init) == case.initial, fix.diagnosis
    module, _, attr = case.spec.partition(":")
    reference = _seeded(getattr(__import__(module), attr)).state_dict()
    assert set(r.loaded) == set(reference)
    for key, value in r.loaded.items():
        if key in case.mapping:
            want = case.source[case.mapping[key]]
            want = want.t() if key in case.transposed else want
            assert torch.equal(value, want.to(value.dtype)), f"{name}: {key} does not hold {case.mapping[key]}"
        else:  # left at its initial value, and named (num_batches_tracked too, filled by BatchNorm itself)
            assert torch.equal(value, reference[key]), f"{name}: {key} is not its initial value"
            assert key in fix.random_init or key in fix.backfilled, f"{name}: {key} not named"
            if key in fix.backfilled:
                assert any(key in d and "by BatchNorm itself" in d for d in fix.diagnosis)
                assert key in fix.snippet
    # the snapshot (no torch) proposes the same fix
    assert r.snap.fix is not None
    assert (r.snap.fix.renames, r.snap.fix.drop, r.snap.fix.transpose) == (fix.renames, fix.drop, fix.transpose)


def test_discarded_tensors_are_named(ran: dict[str, Ran]) -> None:
    fix = ran["vgg-shift"].live.fix
    assert fix is not None and not fix.drop  # every conv found its place
    assert sorted(fix.backfilled) == sorted(f"0.{i}.num_batches_tracked" for i in (1, 5, 9, 12))  # BatchNorm: 0
    empty = ran["empty"].live.fix
    assert empty is not None and empty.backfilled == ["bn.num_batches_tracked"]
    fix = ran["meta-tensor"].live.fix
    assert fix is not None and any("discarded" in d and "fc.bias" in d for d in fix.diagnosis)
    assert any("initial value" in d and "fc.bias" in d for d in fix.diagnosis)


def test_snippet_spelling(ran: dict[str, Ran]) -> None:
    assert "checkpoint['state'][5]" in ran["integer-key-path"].live.fix.snippet  # type: ignore[union-attr]
    whole = ran["whole-module-pickle"].live.fix.snippet  # type: ignore[union-attr]
    assert "weights_only=False" not in whole and "trust" not in whole and ".state_dict()" in whole
    assert "from compat_models import ModelA" in whole and "from torch.nn.modules.conv import Conv2d" in whole
    assert "with torch.serialization.safe_globals([" in whole and "weights_only=True)" in whole
    assert ".t()" in ran["conv1d-transposed"].live.fix.snippet  # type: ignore[union-attr]


class _Shell:
    """Pickles as ``os.system(cmd)``: what a hostile whole-module file hides in an attribute."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (self.cmd,))


def test_hostile_whole_module_gets_no_loading_code(tmp_path: Path) -> None:
    """A model pickle that also calls os.system: the snippet loads nothing, explains, and exits."""
    from conftest import python_process

    marker = tmp_path / "ran"
    m = _seeded(cm.ModelA)
    m.payload = _Shell(f"touch {marker}")  # type: ignore[assignment]
    path = tmp_path / "hostile.pt"
    torch.save(m, path)
    sig, model = live_signature("compat_models:ModelB", {})
    fix = analyze(ckptlint.inspect(str(path)), sig, model=model).fix
    assert fix is not None
    code = [line for line in fix.snippet.splitlines() if line and not line.startswith("#")]
    assert len(code) == 1 and code[0].startswith("raise SystemExit(") and "torch.load" not in fix.snippet
    assert "posix.system" in code[0]  # names the global that is not a model class
    script = tmp_path / "snippet.py"
    script.write_text(fix.snippet)
    proc = python_process(str(script), cwd=tmp_path, pythonpath=[TESTS])
    assert proc.returncode == 1 and "not loading" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()
