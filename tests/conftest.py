"""Shared test helpers: the in-process CLI runner, one subprocess helper, torch, and the test tiers.

Tiers (one marker per test, assigned here; run one with ``pytest -m unit``):

* ``differential``: ckptlint against torch itself as the oracle (everything under ``tests/differential/``).
* ``unit``: torch-free and in-process: the test's module imports no torch at its top and the
  test uses none of the fixtures :data:`NOT_UNIT_FIXTURES` (``torch``, ``run_python``, ``pytester``).
  The tier runs in seconds, and on Python 3.10 without torch installed (``tox -e py310``).
* ``integration``: the rest (checkpoints torch wrote, live targets, pre-commit, processes).

So a test needing torch asks for the ``torch`` fixture (the module, imported on first use) instead
of importing it at the module's top; a test starting a process uses ``run_python`` or is marked
(a ``unit`` test that starts one fails, saying so).
An explicit ``@pytest.mark.integration`` / ``pytestmark`` wins over the rule.
Under ``-m unit`` modules that import torch at their top are not even collected. This module imports no torch.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent

TIERS = ("unit", "integration", "differential")

NOT_UNIT_FIXTURES = frozenset({"torch", "run_python", "pytester", "testdir"})
"""A test using one of these (directly or through another fixture) is not a unit test."""

TORCH_MODULES = frozenset({"torch", "torchvision", "numpy", "safetensors", "transformers", "peft", "timm",
                           "lightning", "pytorch_lightning", "accelerate", "compat_models", "_oracle"})
"""Imported at a test module's top, these make the module torch-bound (the local helpers import torch)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: torch-free, in-process tests (seconds; also run on Python 3.10)")
    config.addinivalue_line("markers", "integration: tests that use torch or start processes")
    config.addinivalue_line("markers", "differential: ckptlint's answer compared with torch's own (the oracle)")


@functools.cache
def imports_torch_at_top(path: Path) -> bool:
    """Whether the module imports torch (or a helper that does) at module level, ``if TYPE_CHECKING:`` aside."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True  # let collection report it
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n.split(".")[0] in TORCH_MODULES for n in names):
            return True
    return False


def _is_differential(path: Path) -> bool:
    return TESTS / "differential" in path.parents


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit``, modules that cannot hold unit tests are not imported (they need torch)."""
    if config.option.markexpr != "unit":
        return None
    if collection_path.is_dir():
        return True if collection_path.resolve() == TESTS / "differential" else None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return imports_torch_at_top(collection_path.resolve()) or None


def _tier(item: pytest.Item) -> str:
    path = Path(str(item.path)).resolve()
    if _is_differential(path):
        return "differential"
    if imports_torch_at_top(path) or NOT_UNIT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))


def _no_process(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
    self._child_created = False  # type: ignore[attr-defined]  # Popen.__del__ then has nothing to clean up
    pytest.fail(f"a unit test started a process ({args!r}): use the run_python fixture, or mark the test "
                "@pytest.mark.integration (docs/development.md, test tiers)", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A ``unit`` test runs in this process: starting another one fails it (so the tier stays seconds)."""
    if item.get_closest_marker("unit") is None:
        return (yield)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", _no_process)
        return (yield)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """One folder for a test module's shared files, removed when the module's tests are done.

    ``tmp_path_factory.mktemp`` folders live until the session ends, and the suite writes over 20 GB in a run
    (torchvision and converted checkpoints): more than CI's disk holds. Per-test folders go as each test
    passes (``tmp_path_retention_policy`` in pyproject.toml); the big module-wide ones go here."""
    d = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def torch() -> ModuleType:
    """The torch module, for tests that build checkpoints with it (and are therefore not unit tests)."""
    return importlib.import_module("torch")


# ---- running the CLI -----------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """What one ``ckptlint`` invocation produced (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


class CliRunner:
    """Calls ``ckptlint.cli.main(argv)`` in this process, capturing its streams and exit code.

    In-process is ~100x cheaper than a new interpreter; use ``run_python`` only where the
    process boundary is what the test is about. Each call starts from what a new process
    would see: configuration files are read again, and modules imported from temporary
    directories (target model modules a test wrote) are forgotten afterwards, as are
    ``sys.path`` changes. ``pythonpath`` entries are put in front of ``sys.path`` (the
    in-process PYTHONPATH). An exception escaping ``main`` fails the test with its traceback.
    """

    def __call__(self, *args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str | None] | None = None,
                 pythonpath: Sequence[str | os.PathLike[str]] = ()) -> CliResult:
        from ckptlint.cli import main

        _forget_process_caches()
        importlib.invalidate_caches()
        modules_before, path_before = set(sys.modules), list(sys.path)
        out, err = io.StringIO(), io.StringIO()
        try:
            with pytest.MonkeyPatch.context() as mp:
                if cwd is not None:
                    mp.chdir(cwd)
                for key, value in (env or {}).items():
                    if value is None:
                        mp.delenv(key, raising=False)
                    else:
                        mp.setenv(key, value)
                sys.path[:0] = [os.fspath(p) for p in pythonpath]
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        code = main([os.fspath(a) for a in args])
                    except SystemExit as e:  # not expected from main(); recorded, not hidden
                        code = e.code if isinstance(e.code, int) else 2
        finally:
            sys.path[:] = path_before
            _forget_temporary_modules(set(sys.modules) - modules_before)
            _forget_process_caches()  # nothing found on this call's path outlives it
        return CliResult(code, out.getvalue(), err.getvalue())


PROCESS_CACHES = (
    ("ckptlint.config", "load_config"),
    ("ckptlint.targets.resolve", "_CACHE"),
    ("ckptlint.plugin.manager", "plugin_manager"),
    ("ckptlint.plugin.manager", "builtin_hooks"),
    ("ckptlint.plugin.manager", "all_rules"),
)
"""What ckptlint keeps for the life of a process: a config per path, a built target per spec, the plugins.

A test may rewrite a config or a model module between two calls, or put a plugin's distribution on
the path (``pythonpath=``); a new process would see the change. Rebuilding them costs milliseconds.
"""


def _forget_process_caches() -> None:
    for module, name in PROCESS_CACHES:
        mod = sys.modules.get(module)
        if mod is None:
            continue
        cache = getattr(mod, name)  # AttributeError: the cache moved; update PROCESS_CACHES
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
        else:
            cache.clear()


def _forget_temporary_modules(names: set[str]) -> None:
    """Drop modules loaded from temporary directories: the next test may write another module of that name."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and tmp in Path(file).resolve().parents:
            del sys.modules[name]


@pytest.fixture
def cli() -> CliRunner:
    """``cli("check", path, "--format", "json")`` -> :class:`CliResult`, in-process.

    Fixtures of a wider scope call ``CliRunner()(...)`` directly.
    """
    return CliRunner()


def python_process(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
               env: Mapping[str, str | None] | None = None, pythonpath: Sequence[str | os.PathLike[str]] = (),
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a new interpreter (e.g. ``run_python("-m", "ckptlint", "check", f)``).

    For tests about the process itself: exit paths, "torch was never imported", a terminal
    on stdout. ``env`` entries set to None are removed;
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


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`python_process`, as a fixture: the test is then an integration test."""
    return python_process
