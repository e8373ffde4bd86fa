"""Shared test helpers: the in-process CLI runner, one subprocess helper, and the test tiers.

Tiers (markers assigned here, by path or module name; run one with ``pytest -m unit``):

* ``unit``: torch-free and in-process; the whole tier runs in seconds and on Python 3.10
  without torch installed (``tox -e py310``).
* ``differential``: ckptlint against torch itself as the oracle (``tests/differential/``).
* ``integration``: everything else (torch-built checkpoints, live targets, pre-commit,
  pytest-in-pytest, process-level behaviour).

A test in a unit module that does need torch or a process is marked ``@pytest.mark.integration``
(an explicit tier mark wins over the module's). ``pytest -m unit`` does not even import the other
modules, so it runs where torch is not installed. This module imports no torch.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

TIERS = ("unit", "integration", "differential")

# Modules whose every test is torch-free and in-process (no interpreter started):
# they form the `unit` tier, which `tox -e py310` runs without torch installed.
UNIT_MODULES = frozenset({
    "test_classify",
})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: torch-free, in-process tests (seconds; also run on Python 3.10)")
    config.addinivalue_line("markers", "integration: tests that build checkpoints with torch or start processes")
    config.addinivalue_line("markers", "differential: ckptlint's answer compared with torch's own (the oracle)")


def _tier(item: pytest.Item) -> str:
    path = Path(str(item.path)).resolve()
    if TESTS / "differential" in path.parents:
        return "differential"
    if path.stem in UNIT_MODULES:
        return "unit"
    return "integration"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit``, modules outside the tier are not imported (they may import torch)."""
    if config.option.markexpr != "unit" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return collection_path.stem not in UNIT_MODULES or None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))


# ---- running the CLI -----------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """What one ``ckptlint`` invocation produced (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


class CliRunner:
    """Calls ``ckptlint.cli.main(argv)`` in this process, capturing its streams and exit code.

    In-process is ~100x cheaper than a new interpreter; use :func:`run_python` only
    where the process boundary is what the test is about.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str | None] | None = None) -> CliResult:
        from ckptlint.cli import main

        out, err = io.StringIO(), io.StringIO()
        with self._monkeypatch.context() as mp:
            if cwd is not None:
                mp.chdir(cwd)
            for key, value in (env or {}).items():
                if value is None:
                    mp.delenv(key, raising=False)
                else:
                    mp.setenv(key, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main([os.fspath(a) for a in args])
                except SystemExit as e:  # not expected from main(); recorded, not hidden
                    code = e.code if isinstance(e.code, int) else 2
        return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """``cli("check", path, "--format", "json")`` -> :class:`CliResult`, in-process."""
    return CliRunner(monkeypatch)


def run_python(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
               env: Mapping[str, str | None] | None = None, pythonpath: Sequence[str | os.PathLike[str]] = (),
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a new interpreter (e.g. ``run_python("-m", "ckptlint", "check", f)``).

    For tests about the process itself: exit paths, "torch was never imported",
    entry points installed in another site directory. ``env`` entries set to None are removed;
    ``pythonpath`` entries are prepended to PYTHONPATH.
    """
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    if pythonpath:
        parts = [os.fspath(p) for p in pythonpath]
        if full.get("PYTHONPATH"):
            parts.append(full["PYTHONPATH"])
        full["PYTHONPATH"] = os.pathsep.join(parts)
    return subprocess.run([sys.executable, *(os.fspath(a) for a in args)], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=timeout, check=False)
