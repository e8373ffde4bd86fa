"""Hand-built targets against torch's load_state_dict; the fix snippets run as pasted; the CLI surface.

Models live in tests/compat_models.py (``compat_models:Name`` specs). torch is the
oracle throughout: every verdict here is compared with a real ``load_state_dict``.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch  # noqa: TID253 - every test here builds targets with torch and compares with its load_state_dict

import ckptlint
from ckptlint.compat.analyze import analyze
from ckptlint.compat.fixes import apply_fix
from ckptlint.targets.resolve import live_signature
from ckptlint.targets.signature import Signature

import compat_models as cm
from conftest import CliResult, CliRunner, python_process

HERE = os.path.dirname(os.path.abspath(__file__))


def _cli(args: list[str], cwd: str | None = None, extra_path: tuple[str, ...] = ()) -> CliResult:
    """``ckptlint ARGS`` in-process, with ``extra_path`` (and tests/, for compat_models) importable."""
    return CliRunner()(*args, cwd=cwd, pythonpath=[*extra_path, HERE])


def _torch_load(model: torch.nn.Module, sd, strict: bool):
    """(missing, unexpected, error message or None) as torch reports them."""
    try:
        r = model.load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        return None, None, str(e)
    return list(r.missing_keys), list(r.unexpected_keys), None


def _both(path: str, spec: str, kwargs=None):
    sig, meta = live_signature(spec, kwargs or {})
    inv = ckptlint.inspect(path)
    live = analyze(inv, sig, model=meta)
    snap = analyze(inv, Signature.from_json(json.loads(json.dumps(sig.to_json()))))
    return sig, live, snap


def _agree(rep, model_factory, sd, label=""):
    """ckptlint's verdict equals torch's (strict and non-strict)."""
    r = rep.result
    miss, unexp, err = _torch_load(model_factory(), sd, strict=False)
    if err is None:
        assert r.nonstrict_ok, label
        assert set(r.missing) == set(miss) and set(r.unexpected) == set(unexp), label
    else:
        assert not r.nonstrict_ok, label
    _, _, err_strict = _torch_load(model_factory(), sd, strict=True)
    assert r.strict_ok == (err_strict is None), (label, err_strict)


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


# -- hand-built targets -------------------------------------------------------------


def test_warm_start_pair_renames_by_structure(tmp_path):
    path = _save(cm.ModelA().state_dict(), tmp_path / "a.pt")
    sig, live, snap = _both(path, "compat_models:ModelB")
    sd = torch.load(path, weights_only=True)
    for rep in (live, snap):
        _agree(rep, cm.ModelB, sd)
        assert not rep.result.strict_ok
        fix = rep.fix
        assert fix is not None and fix.strict and not fix.drop
        mapped = apply_fix(rep.state_dict, fix.renames, []).entries
        assert set(mapped) == set(sig.expected())
        assert any("conv1" in p and "backbone_conv" in r for p, r in fix.renames)
        assert any("fc" in p and "new_fc" in r for p, r in fix.renames)
    ns: dict[str, Any] = {}
    exec(compile(live.fix.snippet, "<snippet>", "exec"), ns)  # noqa: S102 - ckptlint's fix snippet: loads strictly or raises
    assert torch.equal(ns["model"].new_fc.weight, sd["fc.weight"])


def test_non_persistent_buffers(tmp_path):
    m = cm.NonPersistent()
    assert "cache" not in m.state_dict()
    ok = _save(m.state_dict(), tmp_path / "ok.pt")
    _, live, snap = _both(ok, "compat_models:NonPersistent")
    assert live.result.strict_ok and snap.result.strict_ok
    with_cache = OrderedDict(m.state_dict())
    with_cache["cache"] = torch.ones(4)
    bad = _save(with_cache, tmp_path / "bad.pt")
    _, live, snap = _both(bad, "compat_models:NonPersistent")
    sd = torch.load(bad, weights_only=True)
    for rep in (live, snap):
        _agree(rep, cm.NonPersistent, sd)
        assert rep.result.unexpected == ("cache",)
        assert rep.fix is not None and rep.fix.drop == ["cache"] and rep.fix.strict


def test_load_pre_hook_live_agrees_snapshot_inexact(tmp_path):
    src = OrderedDict((k.replace("lin.", "old_lin.", 1) if k.startswith("lin.") else k, v)
                      for k, v in cm.PreHooked().state_dict().items())
    path = _save(src, tmp_path / "old.pt")
    sig, live, snap = _both(path, "compat_models:PreHooked")
    sd = torch.load(path, weights_only=True)
    assert cm.PreHooked().load_state_dict(sd, strict=True) is not None  # torch: fine thanks to the hook
    _agree(live, cm.PreHooked, sd, "live")
    assert live.exact and live.result.strict_ok
    assert not snap.exact and snap.result.notes
    # the snapshot replays default rules: it sees old_lin.* as unexpected and lin.* as missing
    assert not snap.result.strict_ok
    # the CLI reports it as CK207 against a snapshot file
    snapfile = tmp_path / "snap.json"
    snapfile.write_text(json.dumps(sig.to_json()))
    out = _cli(["check", path, "--snapshot", str(snapfile), "--format", "json"])
    rep = json.loads(out.stdout)["files"][0]
    assert "CK207" in {f["code"] for f in rep["findings"]}
    assert rep["compat"]["exact"] is False
    out = _cli(["check", path, "--model", "compat_models:PreHooked", "--format", "json"])
    rep = json.loads(out.stdout)["files"][0]
    assert out.returncode == 0, out.stdout + out.stderr
    assert rep["compat"]["strict_ok"] is True and rep["compat"]["exact"] is True
    assert "CK207" not in {f["code"] for f in rep["findings"]}


def test_pre_hook_renamed_key_with_wrong_shape(tmp_path):
    sd = OrderedDict(cm.PreHooked().state_dict())
    sd["old_lin.weight"] = torch.zeros(5, 4)  # renamed by the hook, then a size mismatch
    del sd["lin.weight"]
    path = _save(sd, tmp_path / "p.pt")
    _, live, _ = _both(path, "compat_models:PreHooked")
    loaded = torch.load(path, weights_only=True)
    _agree(live, cm.PreHooked, loaded)
    assert live.result.shape_mismatch == {"lin.weight": ((5, 4), (3, 4))}


def test_tied_weights(tmp_path):
    sig, _ = live_signature("compat_models:Tied")
    assert sig.shared == {"head.weight": "emb.weight"}
    m = cm.Tied()
    both = _save(m.state_dict(), tmp_path / "both.pt")
    assert set(torch.load(both, weights_only=True)) == {"emb.weight", "head.weight"}
    _, live, snap = _both(both, "compat_models:Tied")
    assert live.result.strict_ok and snap.result.strict_ok
    one = _save(OrderedDict([("emb.weight", m.emb.weight.detach())]), tmp_path / "one.pt")
    _, live, snap = _both(one, "compat_models:Tied")
    sd = torch.load(one, weights_only=True)
    for rep in (live, snap):
        _agree(rep, cm.Tied, sd)  # torch does not know about the tie: head.weight is missing
        assert rep.result.missing == ("head.weight",)


def test_extra_state(tmp_path):
    m = cm.WithExtraState()
    m.calls = 3
    sd = m.state_dict()
    assert "_extra_state" in sd
    path = _save(sd, tmp_path / "x.pt")
    _, live, snap = _both(path, "compat_models:WithExtraState")
    assert live.result.strict_ok and snap.result.strict_ok
    loaded = torch.load(path, weights_only=True)
    _agree(live, cm.WithExtraState, loaded)
    no_extra = OrderedDict((k, v) for k, v in sd.items() if k != "_extra_state")
    path2 = _save(no_extra, tmp_path / "y.pt")
    _, live, snap = _both(path2, "compat_models:WithExtraState")
    loaded2 = torch.load(path2, weights_only=True)
    for rep in (live, snap):
        _agree(rep, cm.WithExtraState, loaded2)
        assert rep.result.missing == ("_extra_state",)
    # and into a model without extra state: unexpected
    path3 = _save(OrderedDict([("weight", torch.zeros(2, 2)), ("bias", torch.zeros(2)), ("_extra_state", {"a": 1})]),
                  tmp_path / "z.pt")
    _, live, snap = _both(path3, "torch.nn:Linear", {"in_features": 2, "out_features": 2})
    loaded3 = torch.load(path3, weights_only=True)
    for rep in (live, snap):
        _agree(rep, lambda: torch.nn.Linear(2, 2), loaded3)
        assert rep.result.unexpected == ("_extra_state",)


@pytest.mark.parametrize(("shape", "loads"), [((1,), True), ((), True), ((2,), False), ((1, 1), False)])
def test_zero_dim_parameter(tmp_path, shape, loads):
    sd = OrderedDict(cm.Scalar().state_dict())
    sd["scale"] = torch.full(shape, 2.0)
    path = _save(sd, tmp_path / "s.pt")
    _, live, snap = _both(path, "compat_models:Scalar")
    loaded = torch.load(path, weights_only=True)
    for rep in (live, snap):
        _agree(rep, cm.Scalar, loaded)
        assert rep.result.strict_ok == loads
    _, _, err = _torch_load(cm.Scalar(), loaded, strict=True)
    assert (err is None) == loads


def test_non_tensor_value(tmp_path):
    sd = OrderedDict(cm.Scalar().state_dict())
    sd["lin.bias"] = [0.0, 0.0]
    sd["note"] = "not a tensor either"
    path = _save(sd, tmp_path / "n.pt")
    _, live, snap = _both(path, "compat_models:Scalar")
    loaded = torch.load(path, weights_only=True)
    _, _, err = _torch_load(cm.Scalar(), loaded, strict=False)
    assert err and 'While copying the parameter named "lin.bias"' in err
    for rep in (live, snap):
        _agree(rep, cm.Scalar, loaded)
        assert set(rep.result.non_tensor) == {"lin.bias"}
        assert rep.result.unexpected == ("note",)
        fix = rep.fix
        assert fix is not None and set(fix.drop) == {"lin.bias", "note"}
        res = cm.Scalar().load_state_dict(apply_fix_to(loaded, fix), strict=fix.strict)
        assert set(res.missing_keys) == set(fix.random_init) == {"lin.bias"}


def apply_fix_to(sd, fix):
    import re

    def rename(k):
        for p, r in fix.renames:
            k = re.sub(p, r, k)
        return k
    return OrderedDict((rename(k), v) for k, v in sd.items() if rename(k) not in set(fix.drop))


# -- the snippet, executed as a user would ---------------------------------------------


def _run_snippet(snippet: str, cwd: Path) -> str:
    """Runs the snippet as a user pastes it (a fresh namespace, in ``cwd``); the loaded model's class name."""
    ns: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        exec(compile(snippet, "<snippet>", "exec"), ns)  # noqa: S102 - the fix snippet ckptlint wrote, run as users would
    return type(ns["model"]).__name__


def test_snippet_runs_for_ddp_resnet18(tmp_path):
    from torchvision.models import resnet18

    sd = resnet18(num_classes=10).state_dict()
    ddp = OrderedDict(("module." + k, v) for k, v in sd.items())
    ddp._metadata = OrderedDict([("", {"version": 1})] +
                                [("module" + ("." + k if k else ""), v) for k, v in sd._metadata.items()])
    path = _save(ddp, tmp_path / "ddp.pt")
    _, live, snap = _both(path, "torchvision.models:resnet18", {"num_classes": 10})
    assert live.fix is not None and live.fix.renames == [("^module\\.", "")] and live.fix.strict
    assert snap.fix.snippet == live.fix.snippet
    assert _run_snippet(live.fix.snippet, tmp_path) == "ResNet"


def test_snippet_runs_for_warm_start_pair(tmp_path):
    path = _save(cm.ModelA().state_dict(), tmp_path / "a.pt")
    _, live, _ = _both(path, "compat_models:ModelB")
    assert _run_snippet(live.fix.snippet, tmp_path) == "ModelB"


def test_snippet_runs_for_resized_head_in_lightning(tmp_path):
    from torchvision.models import resnet18

    sd = resnet18().state_dict()
    path = _save({"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 3}, tmp_path / "l.ckpt")
    _, live, _ = _both(path, "torchvision.models:resnet18", {"num_classes": 10})
    fix = live.fix
    assert not fix.strict and set(fix.random_init) == {"fc.weight", "fc.bias"} == set(fix.drop)
    snippet = fix.snippet + "assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight'], result\n"
    assert _run_snippet(snippet, tmp_path) == "ResNet"


# -- CLI --------------------------------------------------------------------------------

CONTRACT = {"target", "state_dict_path", "strict_ok", "missing", "unexpected", "shape_mismatch", "dtype_mismatch",
            "fix"}


@pytest.fixture(scope="module")
def resized_ddp(tmp_path_factory):
    """A DDP-prefixed resnet18 (1000 classes) saved in fp16 for a 10-class target; and its snapshot."""
    from torchvision.models import resnet18

    d = tmp_path_factory.mktemp("cli")
    sd = resnet18().state_dict()
    ck = OrderedDict(("module." + k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
    path = _save(ck, d / "ddp_head.pt")
    snap = str(d / "resnet18_10.json")
    out = _cli(["snapshot", "torchvision.models:resnet18", "--model-kwargs", '{"num_classes": 10}', "-o", snap])
    assert out.returncode == 0, out.stderr
    return path, snap


def test_cli_compat_contract(resized_ddp):
    path, _ = resized_ddp
    out = _cli(["check", path, "--model", "torchvision.models:resnet18", "--model-kwargs", '{"num_classes": 10}',
                "--format", "json"])
    assert out.returncode == 1, out.stderr
    compat = json.loads(out.stdout)["files"][0]["compat"]
    assert set(compat) >= CONTRACT
    assert {"renames", "drop", "snippet"} <= set(compat["fix"])
    assert compat["target"] == "torchvision.models:resnet18"
    assert compat["state_dict_path"] == []
    assert compat["strict_ok"] is False
    # torch's verdict for the same file
    from torchvision.models import resnet18

    sd = torch.load(path, weights_only=True)
    res = resnet18(num_classes=10).load_state_dict(sd, strict=False)
    assert set(compat["missing"]) == set(res.missing_keys)
    assert set(compat["unexpected"]) == set(res.unexpected_keys)
    assert compat["shape_mismatch"] == {}  # prefixed: nothing lines up before the fix
    assert compat["fix"]["renames"] == [["^module\\.", ""]]
    assert set(compat["fix"]["drop"]) == {"fc.weight", "fc.bias"}
    fixed = OrderedDict((k[len("module."):], v) for k, v in sd.items()
                        if k[len("module."):] not in {"fc.weight", "fc.bias"})
    res = resnet18(num_classes=10).load_state_dict(fixed, strict=False)
    assert set(res.missing_keys) == set(compat["fix"]["random_init"]) and not res.unexpected_keys


def test_cli_snapshot_without_torch_matches_model(resized_ddp):
    path, snap = resized_ddp
    code = textwrap.dedent(f"""
        import io, json, sys, contextlib
        from ckptlint.cli import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["check", {path!r}, "--snapshot", {snap!r}, "--format", "json"])
        assert "torch" not in sys.modules, "torch was imported"
        print(json.dumps({{"rc": rc, "report": json.loads(buf.getvalue())}}))
    """)
    out = python_process("-c", code)  # a process: that torch is never imported is the point
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["rc"] == 1
    by_snapshot = got["report"]["files"][0]["compat"]
    live = _cli(["check", path, "--model", "torchvision.models:resnet18", "--model-kwargs", '{"num_classes": 10}',
                 "--format", "json"])
    by_model = json.loads(live.stdout)["files"][0]["compat"]
    assert by_snapshot == by_model
    assert by_snapshot["dtype_mismatch"] == {}  # prefixed keys: nothing to compare before the rename


def test_snapshot_verify_detects_class_change(tmp_path):
    mod = tmp_path / "mymodels.py"
    mod.write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.fc = torch.nn.Linear(4, 3)\n")
    snap = str(tmp_path / "net.json")
    out = _cli(["snapshot", "mymodels:Net", "-o", snap], cwd=str(tmp_path), extra_path=(str(tmp_path),))
    assert out.returncode == 0, out.stderr
    out = _cli(["snapshot", "mymodels:Net", "--verify", snap], cwd=str(tmp_path), extra_path=(str(tmp_path),))
    assert out.returncode == 0, out.stdout + out.stderr
    mod.write_text(mod.read_text().replace("Linear(4, 3)", "Linear(4, 5)")
                   + "        self.extra = torch.nn.Linear(1, 1)\n")
    out = _cli(["snapshot", "mymodels:Net", "--verify", snap], cwd=str(tmp_path), extra_path=(str(tmp_path),))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "fc.weight" in out.stdout and "extra.weight" in out.stdout
    # check --model with --snapshot reports the drift (CK208)
    ck = _save(OrderedDict([("fc.weight", torch.zeros(3, 4)), ("fc.bias", torch.zeros(3))]), tmp_path / "c.pt")
    out = _cli(["check", ck, "--model", "mymodels:Net", "--snapshot", snap, "--format", "json"], cwd=str(tmp_path),
               extra_path=(str(tmp_path),))
    codes = {f["code"] for f in json.loads(out.stdout)["files"][0]["findings"]}
    assert "CK208" in codes


def test_cli_diff_prefixed_resized_pair(tmp_path):
    from torchvision.models import resnet18

    a = resnet18().state_dict()
    b_src = resnet18(num_classes=10).state_dict()
    b = OrderedDict(("module." + k, v) for k, v in b_src.items() if k != "layer4.1.bn2.num_batches_tracked")
    b["module.conv1.weight"] = b["module.conv1.weight"].half()
    b["module.extra.weight"] = torch.zeros(2)
    pa, pb = _save(a, tmp_path / "a.pt"), _save(b, tmp_path / "b.pt")
    out = _cli(["diff", pa, pb, "--format", "json"])
    assert out.returncode == 1, out.stderr
    d = json.loads(out.stdout)
    assert d["renames"] == [["^", "module."]]
    assert d["added"] == ["module.extra.weight"]
    assert d["removed"] == ["layer4.1.bn2.num_batches_tracked"]
    assert d["shape_changed"] == {"module.fc.weight": [[1000, 512], [10, 512]], "module.fc.bias": [[1000], [10]]}
    assert d["dtype_changed"] == {"module.conv1.weight": ["float32", "float16"]}
    assert d["identical"] is False
    same = _cli(["diff", pa, pa])
    assert same.returncode == 0, same.stdout + same.stderr
    text = _cli(["diff", pa, pb])
    assert "module." in text.stdout and "extra.weight" in text.stdout


def test_config_targets_applied_by_glob(tmp_path):
    from torchvision.models import resnet18

    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [[tool.ckptlint.targets]]
        files = ["weights/*.pt"]
        model = "torchvision.models:resnet18"
        allow-missing = ["fc.*"]
    """))
    (tmp_path / "weights").mkdir()
    (tmp_path / "other").mkdir()
    sd = resnet18().state_dict()
    no_fc = OrderedDict((k, v) for k, v in sd.items() if not k.startswith("fc."))
    _save(no_fc, tmp_path / "weights" / "x.pt")
    no_conv = OrderedDict((k, v) for k, v in sd.items() if k != "conv1.weight")
    _save(no_conv, tmp_path / "weights" / "z.pt")
    _save(no_fc, tmp_path / "other" / "y.pt")
    out = _cli(["check", "weights/x.pt", "weights/z.pt", "other/y.pt", "--format", "json"], cwd=str(tmp_path))
    files = {f["path"]: f for f in json.loads(out.stdout)["files"]}
    x, z, y = files["weights/x.pt"], files["weights/z.pt"], files["other/y.pt"]
    # torch agrees on what is missing
    res = resnet18().load_state_dict(no_fc, strict=False)
    assert set(x["compat"]["missing"]) == set(res.missing_keys) == {"fc.weight", "fc.bias"}
    assert "CK201" not in {f["code"] for f in x["findings"]}  # allowed by allow-missing
    assert x["compat"]["target"] == "torchvision.models:resnet18"
    assert "CK201" in {f["code"] for f in z["findings"]}
    assert z["compat"]["missing"] == ["conv1.weight"]
    assert y["compat"] is None
    assert not any(f["code"].startswith("CK2") for f in y["findings"])
    assert out.returncode == 1  # z.pt
    only_x = _cli(["check", "weights/x.pt"], cwd=str(tmp_path))
    assert only_x.returncode == 0, only_x.stdout + only_x.stderr


def test_target_load_code_that_raises_is_a_finding(tmp_path: Path) -> None:
    import torchvision

    sd = dict(torchvision.models.mnasnet0_5().state_dict())  # a plain dict: _metadata is lost
    torch.save(sd, tmp_path / "mnasnet.pt")
    try:
        torchvision.models.mnasnet0_5().load_state_dict(torch.load(tmp_path / "mnasnet.pt", weights_only=True))
    except ValueError as e:
        torch_error = str(e)
    else:
        raise AssertionError("torch was expected to refuse this state_dict")
    report = ckptlint.check(tmp_path / "mnasnet.pt", model="torchvision.models:mnasnet0_5")
    (finding,) = [f for f in report.files[0].findings if f.code == "CK210"]
    assert finding.severity == "error" and torch_error.splitlines()[0] in finding.message
    assert report.files[0].compat.strict_ok is False and report.exit_code() == 1


TIED_AND_NO_META = '''
import torch


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight


class NeedsValues(torch.nn.Module):
    def __init__(self):
        super().__init__()
        width = int(torch.ones(()).item()) + 1  # .item() has no value on the meta device
        self.fc = torch.nn.Linear(width, 2)
'''


def test_tied_weights_stored_once_or_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tied_models.py").write_text(TIED_AND_NO_META)
    monkeypatch.syspath_prepend(str(tmp_path))
    import tied_models

    torch.save({"emb.weight": torch.zeros(10, 4)}, tmp_path / "once.pt")
    torch.save({"emb.weight": torch.zeros(10, 4), "head.weight": torch.ones(10, 4)}, tmp_path / "apart.pt")
    once = ckptlint.check(tmp_path / "once.pt", model="tied_models:TiedLM").files[0]
    model = tied_models.TiedLM()
    res = model.load_state_dict(torch.load(tmp_path / "once.pt", weights_only=True), strict=False)
    assert set(res.missing_keys) == set(once.compat.missing) == {"head.weight"}
    assert torch.equal(model.head.weight, torch.zeros(10, 4))  # filled through the tie
    assert "CK211" in {f.code for f in once.findings} and once.compat.fix.random_init == ()
    apart = ckptlint.check(tmp_path / "apart.pt", model="tied_models:TiedLM").files[0]
    model = tied_models.TiedLM()
    model.load_state_dict(torch.load(tmp_path / "apart.pt", weights_only=True))
    assert torch.equal(model.emb.weight, torch.ones(10, 4))  # head.weight loaded last won for both
    (tie,) = [f for f in apart.findings if f.code == "CK211"]
    assert "head.weight" in tie.message and apart.compat.strict_ok


def test_target_that_refuses_meta_is_built_on_cpu_with_a_note(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tied_models.py").write_text(TIED_AND_NO_META)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save({"fc.weight": torch.ones(2, 2), "fc.bias": torch.ones(2)}, tmp_path / "a.pt")
    fr = ckptlint.check(tmp_path / "a.pt", model="tied_models:NeedsValues").files[0]
    assert fr.compat.strict_ok
    assert any("could not be built on the meta device" in n and "built on CPU" in n for n in fr.compat.notes)
