"""The pytest plugin, end to end: ``pytest --ckpt`` loading the plugin from the installed ``pytest11``
entry point (as users get it), with real checkpoints saved by torch, xdist on and off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from conftest import CliRunner

pytest_plugins = ["pytester"]


class Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > marker.txt",))


@pytest.fixture(scope="module")
def store(module_tmp: Path, torch: ModuleType) -> Path:
    """Checkpoints and a snapshot, made once: linked into each pytester directory."""
    import torchvision

    d = module_tmp
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), d / "good.pt")
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), d / "head10.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()), d / "full.pt")
    torch.save({"weights": torch.zeros(2), "x": Boom()}, d / "evil.pt")
    import argparse

    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), "args": argparse.Namespace(lr=0.1)}, d / "ns.pt")
    (d / "notes.pt").write_text("these are not the weights you are looking for\n")
    proc = CliRunner()("snapshot", "torchvision.models:resnet18", "-o", d / "resnet18.json")
    assert proc.returncode == 0, proc.stderr
    return d


def _link(store: Path, dest: Path, *names: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        src, dst = store / name, dest / name
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy(src, dst)


@pytest.fixture(params=[[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def xdist_args(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


def _run(pytester: pytest.Pytester, *args: str, process: bool = False) -> pytest.RunResult:
    """pytest in this process; in a new one with xdist (its workers are processes) or with ``process=True``.

    Either way pytest loads the plugin from the installed ``pytest11`` entry point, as for users.
    """
    full = ("-p", "no:cacheprovider", "-p", "no:randomly", *args)
    if process or "-n" in args:
        return pytester.runpytest_subprocess(*full, timeout=600)
    return pytester.runpytest_inprocess(*full)


def _no_traceback_into_ckptlint(result: pytest.RunResult) -> None:
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "pytest_plugin.py" not in out and "checker.py" not in out


def test_without_ckpt_the_plugin_adds_nothing_and_imports_no_torch(pytester: pytest.Pytester,
                                                                   store: Path) -> None:
    _link(store, pytester.path, "good.pt")
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    pytester.makeconftest("""
import sys

def pytest_sessionfinish(session):
    pm = session.config.pluginmanager
    print("\\nPLUGIN", pm.hasplugin("ckptlint"), "COLLECTION", pm.hasplugin("ckptlint-collection"))
    print("TORCH", "torch" in sys.modules, "CHECKER", "ckptlint.checker" in sys.modules)
""")
    result = _run(pytester, "-s", process=True)  # a process: which modules it imported is the point
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PLUGIN True COLLECTION False", "TORCH False CHECKER False"])

    # A safety check needs no torch either, nor walking a folder: the whole run stays torch-free.
    result = _run(pytester, "-s", "--ckpt", "good.pt", process=True)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["PLUGIN True COLLECTION True", "TORCH False CHECKER True"])
    result = _run(pytester, "-s", "-rA", "--ckpt", ".", process=True)
    result.stdout.fnmatch_lines_random(["PASSED good.pt::safety", "PASSED test_plain.py::test_one"])
    result.stdout.fnmatch_lines(["PLUGIN True COLLECTION True", "TORCH False CHECKER True"])


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("ckptlint") == "ckptlint.pytest_plugin"


def test_item_names(pytester: pytest.Pytester, store: Path, xdist_args: list[str]) -> None:
    _link(store, pytester.path, "good.pt", "head10.pt", "resnet18.json")
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = _run(pytester, "--co", "-q", *xdist_args, "--ckpt", "good.pt", "--ckpt", "head10.pt",
                  "--ckpt-snapshot", "resnet18.json")
    if not xdist_args:  # the controller collects nothing under xdist; it prints no item list
        result.stdout.fnmatch_lines([
            "test_plain.py::test_one",
            "good.pt::safety",
            "good.pt::compat[[]resnet18.json[]]",
            "head10.pt::safety",
            "head10.pt::compat[[]resnet18.json[]]",
        ])
    assert result.ret == 0
    # Without a target there is no compat item.
    result = _run(pytester, "--co", "-q", *xdist_args, "--ckpt", "good.pt", "test_plain.py")
    if not xdist_args:
        result.stdout.fnmatch_lines(["test_plain.py::test_one", "good.pt::safety", "*2 tests collected*"])
        assert "compat" not in result.stdout.str()


def test_outcomes_and_failure_reports(pytester: pytest.Pytester, store: Path, xdist_args: list[str]) -> None:
    _link(store, pytester.path, "good.pt", "head10.pt", "full.pt", "evil.pt", "notes.pt", "resnet18.json")
    result = _run(pytester, *xdist_args, "-rA", "--ckpt-snapshot", "resnet18.json",
                  *[a for f in ("good.pt", "head10.pt", "full.pt", "evil.pt", "notes.pt", "missing.pt")
                    for a in ("--ckpt", f)])
    # passing: good safety+compat, head10 safety; failing: the rest
    result.assert_outcomes(passed=3, failed=9)
    result.stdout.fnmatch_lines_random([
        "PASSED good.pt::safety",
        "PASSED good.pt::compat[[]resnet18.json[]]",
        "PASSED head10.pt::safety",
        "FAILED head10.pt::compat[[]resnet18.json[]]*",
        "FAILED full.pt::safety*",
        "FAILED evil.pt::safety*",
        "FAILED notes.pt::safety - notes.pt: unreadable: a text file, not a checkpoint",
        "FAILED missing.pt::safety - missing.pt: no such file",
        "FAILED missing.pt::compat[[]resnet18.json[]] - missing.pt: no such file",
    ])
    out = result.stdout.str()
    # The resized head: what differs, the fix, and the loading code.
    result.stdout.fnmatch_lines([
        "*head10.pt: does not load into torchvision.models:resnet18",
        "*CK203*error*fc.weight*2 shape mismatches*fc.weight [[]10, 512[]] vs*",
        "*fix:",
        "*CK203: drop fc.bias, fc.weight; load_state_dict(strict=False)*",
        "*loading code that works for this checkpoint and model:",
    ])
    # The full-model pickle and the os.system payload: their findings and fixes, not a traceback.
    result.stdout.fnmatch_lines(["*full.pt*weights_only=True FAILS", "*CK102*error*full-model pickle*"])
    result.stdout.fnmatch_lines(["*evil.pt*weights_only=True FAILS", "*CK101*error*system can run code*"])
    assert "CK2" not in out.split("evil.pt::safety")[1].split("___")[0]  # safety item shows no compat rows
    _no_traceback_into_ckptlint(result)
    assert not (pytester.path / "marker.txt").exists()  # nothing in the files ran


def test_live_model_target(pytester: pytest.Pytester, store: Path) -> None:
    _link(store, pytester.path, "good.pt", "head10.pt")
    result = _run(pytester, "--ckpt", "good.pt", "--ckpt", "head10.pt",
                  "--ckpt-model", "torchvision.models:resnet18", "--ckpt-model-kwargs", '{"num_classes": 10}')
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*_ [[]ckptlint[]] good.pt::compat[[]torchvision.models:resnet18[]] _*",
        "*CK203*fc.weight [[]1000, 512[]]", "*vs model [[]10, 512[]]*",
    ])
    # A target that cannot be built: the compat item fails with one line.
    result = _run(pytester, "--ckpt", "good.pt", "--ckpt-model", "nosuchpkg.models:net")
    result.assert_outcomes(passed=1, failed=1)  # the safety item does not need the target
    result.stdout.fnmatch_lines([
        "*_ [[]ckptlint[]] good.pt::compat[[]nosuchpkg.models:net[]] _*",
        "good.pt: target nosuchpkg.models:net: cannot import (No module named 'nosuchpkg')",
    ])


PYPROJECT = """
[tool.ckptlint]
trusted-globals = ["argparse.Namespace"]

[[tool.ckptlint.targets]]
files = ["weights/finetuned/*.pt"]
snapshot = "snapshots/resnet18.json"
allow-mismatch = ["fc.*"]

[[tool.ckptlint.targets]]
files = ["weights/*.pt"]
snapshot = "snapshots/resnet18.json"
"""


def test_configured_targets(pytester: pytest.Pytester, store: Path, xdist_args: list[str]) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    _link(store, pytester.path / "snapshots", "resnet18.json")
    _link(store, pytester.path / "weights", "good.pt", "head10.pt")
    _link(store, pytester.path / "weights" / "finetuned", "head10.pt")
    _link(store, pytester.path / "other", "ns.pt")
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    # `--ckpt` alone: every configured checkpoint; `-m ckptlint` selects only those items.
    result = _run(pytester, *xdist_args, "-rA", "-m", "ckptlint", "--ckpt")
    # (xdist deselects on the workers and does not report the count back)
    result.assert_outcomes(passed=5, failed=1, deselected=0 if xdist_args else 1)
    result.stdout.fnmatch_lines_random([
        "PASSED weights/good.pt::safety",
        "PASSED weights/good.pt::compat[[]resnet18.json[]]",
        "PASSED weights/finetuned/head10.pt::safety",
        "PASSED weights/finetuned/head10.pt::compat[[]resnet18.json[]]",  # allow-mismatch fc.*
        "PASSED weights/head10.pt::safety",
        "FAILED weights/head10.pt::compat[[]resnet18.json[]]*",
    ])
    # An explicit path outside the targets: safety only; the config's trusted-globals apply.
    result = _run(pytester, *xdist_args, "-rA", "--ckpt", "other/ns.pt", "test_plain.py")
    result.assert_outcomes(passed=2)
    assert "compat" not in result.stdout.str()


def test_ini_options(pytester: pytest.Pytester, store: Path) -> None:
    _link(store, pytester.path, "ns.pt", "good.pt", "head10.pt")
    _link(store, pytester.path / "snap", "resnet18.json")
    pytester.makeini("[pytest]\nckpt_fail_on = warning\nckpt_snapshot = snap/resnet18.json\n")
    result = _run(pytester, "--ckpt", "ns.pt", "--ckpt", "good.pt")
    # ns.pt: CK104/CK105 warnings fail at fail-on warning; its state_dict (a Linear) is no resnet18.
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*CK104*warning*argparse.Namespace is plain data*"])
    result = _run(pytester, "--ckpt", "ns.pt", "--ckpt-fail-on", "error", "-k", "safety")
    result.assert_outcomes(passed=1, deselected=1)


def test_fixture_and_assertion_helpers(pytester: pytest.Pytester, store: Path, xdist_args: list[str]) -> None:
    _link(store, pytester.path, "good.pt", "head10.pt", "full.pt")
    pytester.makepyfile(test_weights="""
def test_good_loads(ckpt_check):
    ckpt_check("good.pt", model="torchvision.models:resnet18").assert_compatible()
    ckpt_check("good.pt").assert_safe()

def test_resized_head_allowed(ckpt_check):
    report = ckpt_check("head10.pt", model="torchvision.models:resnet18")
    report.assert_compatible(allow_mismatch=["fc.*"])

def test_resized_head(ckpt_check):
    ckpt_check("head10.pt", model="torchvision.models:resnet18").assert_compatible()

def test_full_model(ckpt_check):
    ckpt_check("full.pt").assert_safe()
""")
    result = _run(pytester, *xdist_args)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*AssertionError: checkpoint does not load into torchvision.models:resnet18:",
        "*file*problem*key*detail*",
        "*head10.pt*shape*fc.weight*checkpoint [[]10, 512[]] vs model [[]1000, 512[]]*",
        "*head10.pt*shape*fc.bias*checkpoint [[]10[]] vs model [[]1000[]]*",
        "*fix:*",
        "*head10.pt: CK203: drop fc.bias, fc.weight*",
    ])
    result.stdout.fnmatch_lines([
        "*AssertionError: checkpoint is not safe to load with weights_only=True:",
        "*full.pt*CK102*full-model pickle*",
        "*full.pt*weights_only*",
    ])

