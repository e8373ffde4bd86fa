"""``pytest --ckpt`` as pytest users drive it: folders, the ids ``-v`` prints, selecting an item
by its id, ``--lf``, and failures that show the table, not ckptlint's frames.

Real pytest (``pytester``) loading the plugin from its installed entry point; small checkpoints
torch saves (a 4->2 Linear is the target: ``torch.nn:Linear`` with its kwargs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["pytester"]

MODEL = ("--ckpt-model", "torch.nn:Linear", "--ckpt-model-kwargs", '{"in_features": 4, "out_features": 2}')
COMPAT = "compat[[]torch.nn:Linear[]]"  # fnmatch: [[] and []] are literal brackets


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    """``good.pt`` loads into the target; ``wide.pt`` is safe but 3 outputs wide; ``full.pt`` is a
    whole-module pickle (CK102)."""
    d = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, 2).state_dict(), d / "good.pt")
    torch.save(torch.nn.Linear(4, 3).state_dict(), d / "wide.pt")
    torch.save(torch.nn.Linear(4, 2), d / "full.pt")
    return d


def _place(store: Path, dest: Path, *names: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(store / name, dest / name)


def _run(pytester: pytest.Pytester, *args: str, cache: bool = False) -> pytest.RunResult:
    full = (*(() if cache else ("-p", "no:cacheprovider")), *args)
    return pytester.runpytest_inprocess(*full)


def _ran(result: pytest.RunResult) -> list[str]:
    """The ``-v`` lines of the items that ran: ``id OUTCOME``."""
    return [" ".join(line.split()[:2]) for line in result.outlines
            if line.split()[1:2] and line.split()[1] in ("PASSED", "FAILED", "ERROR")]


def _summary(result: pytest.RunResult) -> list[str]:
    """The ``-rA`` short summary, sorted: ``OUTCOME id``."""
    return sorted(" ".join(line.split()[:2]) for line in result.outlines if line.startswith(("PASSED ", "FAILED ")))


@pytest.fixture
def project(pytester: pytest.Pytester, store: Path) -> pytest.Pytester:
    """checkpoints/{good,wide,full}.pt, checkpoints/old/good.pt and a plain test."""
    _place(store, pytester.path / "checkpoints", "good.pt", "wide.pt", "full.pt")
    _place(store, pytester.path / "checkpoints" / "old", "good.pt")
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    return pytester


def test_verbose_ids_are_the_paths_from_the_rootdir(project: pytest.Pytester) -> None:
    result = _run(project, "-v", *MODEL, "--ckpt", "checkpoints/good.pt", "--ckpt", "checkpoints/wide.pt")
    assert _ran(result) == [
        "test_plain.py::test_one PASSED",
        "checkpoints/good.pt::safety PASSED",
        "checkpoints/good.pt::compat[torch.nn:Linear] PASSED",
        "checkpoints/wide.pt::safety PASSED",
        "checkpoints/wide.pt::compat[torch.nn:Linear] FAILED",
    ]
    assert "::pt::" not in result.stdout.str()  # was checkpoints/good::pt::safety
    # The short summary's id is the same one, and runs from a subfolder print it relative to there.
    result.stdout.fnmatch_lines([f"FAILED checkpoints/wide.pt::{COMPAT} - *"])
    sub = project.mkdir("sub")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = _run(project, "-v", "--rootdir", str(project.path), "--ckpt", "../checkpoints/good.pt", ".")
    assert _ran(result) == ["../checkpoints/good.pt::safety PASSED"]


def test_ckpt_folder_is_walked(project: pytest.Pytester) -> None:
    (project.path / "checkpoints" / "README.md").write_text("# not a checkpoint\n")
    result = _run(project, "-v", "--ckpt", "checkpoints", "test_plain.py")
    assert sorted(_ran(result)) == [
        "checkpoints/full.pt::safety FAILED",
        "checkpoints/good.pt::safety PASSED",
        "checkpoints/old/good.pt::safety PASSED",
        "checkpoints/wide.pt::safety PASSED",
        "test_plain.py::test_one PASSED",
    ]
    assert "not a file" not in result.stdout.str() and "README" not in result.stdout.str()
    # A FIFO the walk finds and a folder with no checkpoint: an item failing with one line each, no hang.
    (project.path / "empty").mkdir()
    (project.path / "pipes").mkdir()
    os.mkfifo(project.path / "pipes" / "stream.pt")
    result = _run(project, "-rA", "--ckpt", "empty", "--ckpt", "pipes", "test_plain.py")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines_random([
        "FAILED empty::safety - empty: a directory with no checkpoint files in it*",
        "FAILED pipes/stream.pt::safety - pipes/stream.pt: not a regular file (a FIFO)*",
    ])
    # A folder and a file in it: each checkpoint once.
    result = _run(project, "--co", "-q", "--ckpt", "checkpoints", "--ckpt", "checkpoints/good.pt", "test_plain.py")
    result.stdout.fnmatch_lines(["*5 tests collected*"])


def test_a_broken_configuration_under_a_ckpt_folder_is_one_line(project: pytest.Pytester) -> None:
    project.makepyprojecttoml("[tool.ckptlint]\nselect = 3\n")
    result = _run(project, "--ckpt", "checkpoints")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --ckpt: *pyproject.toml: [[]tool.ckptlint[]].select must be a list of*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("item", ["checkpoints/wide.pt::compat[torch.nn:Linear]", "checkpoints/old/good.pt::safety"])
def test_an_item_named_by_its_id_runs_alone(project: pytest.Pytester, item: str) -> None:
    result = _run(project, "-v", *MODEL, "--ckpt", "checkpoints", item)
    outcome = "FAILED" if "wide" in item else "PASSED"
    assert _ran(result) == [f"{item} {outcome}"]
    assert result.ret == (1 if outcome == "FAILED" else 0)


def test_a_checkpoint_named_on_the_command_line_runs_its_items_only(project: pytest.Pytester) -> None:
    result = _run(project, "-v", *MODEL, "--ckpt", "checkpoints", "checkpoints/wide.pt", "test_plain.py")
    assert _ran(result) == [  # in the order of the arguments, as pytest collects them
        "checkpoints/wide.pt::safety PASSED",
        "checkpoints/wide.pt::compat[torch.nn:Linear] FAILED",
        "test_plain.py::test_one PASSED",
    ]
    # A checkpoint outside the --ckpt folders, named so: it alone.
    result = _run(project, "-v", "--ckpt", "checkpoints/old", "checkpoints/full.pt")
    assert _ran(result) == ["checkpoints/full.pt::safety FAILED"]
    # `PATH::compat` without the target selects the compat item, as a parametrized test's name does.
    result = _run(project, "-v", *MODEL, "--ckpt", "checkpoints", "checkpoints/good.pt::compat")
    assert _ran(result) == ["checkpoints/good.pt::compat[torch.nn:Linear] PASSED"]


def test_an_id_from_a_report_reruns_without_ckpt(project: pytest.Pytester) -> None:
    result = _run(project, "-v", *MODEL, "checkpoints/wide.pt::compat[torch.nn:Linear]", "checkpoints/good.pt")
    assert _ran(result) == [
        "checkpoints/wide.pt::compat[torch.nn:Linear] FAILED",
        "checkpoints/good.pt::safety PASSED",
        "checkpoints/good.pt::compat[torch.nn:Linear] PASSED",
    ]
    # Only a file named so: a folder argument, or checkpoints beside the tests, add nothing without --ckpt.
    result = _run(project, "-v", "checkpoints", "test_plain.py")
    assert _ran(result) == ["test_plain.py::test_one PASSED"]


def test_last_failed_reruns_compat_and_safety_failures(project: pytest.Pytester) -> None:
    args = ("-rA", *MODEL, "--ckpt", "checkpoints/full.pt", "--ckpt", "checkpoints/good.pt",
            "--ckpt", "checkpoints/wide.pt", "test_plain.py")
    first = _run(project, *args, cache=True)
    failed = [line for line in _summary(first) if line.startswith("FAILED")]
    assert failed == ["FAILED checkpoints/full.pt::safety", "FAILED checkpoints/wide.pt::compat[torch.nn:Linear]"]
    again = _run(project, "--lf", *args, cache=True)
    assert _summary(again) == failed  # was: the safety failure only
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures*"])
    again.assert_outcomes(failed=2)  # the passing items are deselected, their files skipped
    # --deselect takes the same ids.
    result = _run(project, *args, "--deselect", "checkpoints/wide.pt::compat[torch.nn:Linear]",
                  "--deselect", "checkpoints/full.pt")
    result.assert_outcomes(passed=4, deselected=3)  # wide.pt's compat item, both of full.pt's


def test_xdist_workers_collect_the_folder(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-v", "--ckpt", "checkpoints",
                                          "test_plain.py", timeout=300)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines_random(["*PASSED checkpoints/old/good.pt::safety*",
                                        "*FAILED checkpoints/full.pt::safety*"])


def test_failures_show_the_table_not_ckptlint_frames(project: pytest.Pytester) -> None:
    project.makepyfile(test_weights="""
def test_full_model(ckpt_check):
    ckpt_check("checkpoints/full.pt").assert_safe()

def test_wide(ckpt_check):
    ckpt_check("checkpoints/wide.pt", model="torch.nn:Linear",
               model_kwargs={"in_features": 4, "out_features": 2}).assert_compatible()
""")
    result = _run(project, "test_weights.py", *MODEL, "--ckpt", "checkpoints/full.pt", "--ckpt", "checkpoints/wide.pt")
    result.assert_outcomes(failed=4, passed=2)
    out = result.stdout.str()
    # The failing line of the test, then the table: no frame of results.py, no Report(...) repr.
    result.stdout.fnmatch_lines([
        '>       ckpt_check("checkpoints/full.pt").assert_safe()',
        "E       AssertionError: checkpoint is not safe to load with weights_only=True:",
        "E       file*code*key*problem",
        "E       checkpoints/full.pt*CK102*full-model pickle*",
        "test_weights.py:2: AssertionError",
    ])
    result.stdout.fnmatch_lines([
        "E       AssertionError: checkpoint does not load into torch.nn:Linear:",
        "E       checkpoints/wide.pt*shape*weight*checkpoint [[]3, 4[]] vs model [[]2, 4[]]*",
        "test_weights.py:6: AssertionError",
    ])
    assert "Report(" not in out and "self = " not in out
    assert "results.py" not in out and "pytest_plugin.py" not in out and "Traceback" not in out
    # The items fail with ckptlint's report under a headline naming the item.
    result.stdout.fnmatch_lines(["*_ [[]ckptlint[]] checkpoints/full.pt::safety _*",
                                 "checkpoints/full.pt [[]torch-zip[]] — weights_only=True FAILS"])
    assert os.sep + "ckptlint" + os.sep not in out  # no path into the package at all
