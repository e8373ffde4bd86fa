"""pytest plugin: ``pytest --ckpt PATH`` turns checkpoints into test items, plus a ``ckpt_check`` fixture.

Registered through the ``pytest11`` entry point ``ckptlint``. Loading it is cheap:
this module imports only pytest and the standard library; ckptlint's checker (and
torch, for live model targets) is imported when an item runs.

Without ``--ckpt`` the plugin adds nothing. With it, each checkpoint becomes

- ``PATH::safety`` — fails on findings other than CK2xx at or above the fail level
  (CK1xx safety, CK3xx device, …), or when the file cannot be read;
- ``PATH::compat[TARGET]`` — only when a target applies (``--ckpt-model``,
  ``--ckpt-snapshot``, the ``ckpt_model``/``ckpt_snapshot`` ini options, or a
  ``[tool.ckptlint]`` target matching the file); fails when the checkpoint does not
  load into the target (CK2xx findings at or above the fail level, after the
  config's allow patterns).

``--ckpt`` without a path checks every file matched by the ``files`` globs of the
``[tool.ckptlint]`` targets in the configuration found from pytest's rootdir.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .vocab import SEVERITIES

if TYPE_CHECKING:
    from .findings import Finding
    from .results import FileReport

# The helpers raise AssertionError themselves; registering keeps pytest from warning
# when they are imported before the rewrite hook under ``-p no:ckptlint``-style setups.
pytest.register_assert_rewrite("ckptlint.assertions")

CONFIGURED = ""
"""The value ``--ckpt`` takes when given without a path: every configured checkpoint."""

FAIL_LEVELS = SEVERITIES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ckptlint", "checkpoint checks (ckptlint)")
    group.addoption(
        "--ckpt", action="append", nargs="?", const=CONFIGURED, default=None, metavar="PATH", dest="ckpt",
        help="check this checkpoint (repeatable): items PATH::safety and PATH::compat[TARGET]. "
             "Without a path (put it after the test paths, or write --ckpt=): every file matched by "
             "the [tool.ckptlint] targets' files globs.")
    group.addoption("--ckpt-model", metavar="SPEC", dest="ckpt_model",
                    help="target model for the compat items: package.module:callable (needs torch)")
    group.addoption("--ckpt-model-kwargs", metavar="JSON", dest="ckpt_model_kwargs",
                    help="keyword arguments for --ckpt-model, a JSON object")
    group.addoption("--ckpt-snapshot", metavar="FILE", dest="ckpt_snapshot",
                    help="target snapshot from `ckptlint snapshot` (no torch needed)")
    group.addoption("--ckpt-key", metavar="PATH", dest="ckpt_key",
                    help="where the state_dict sits in the checkpoints (default: found automatically)")
    group.addoption("--ckpt-fail-on", choices=FAIL_LEVELS, dest="ckpt_fail_on",
                    help="lowest finding severity that fails an item (default: error)")
    parser.addini("ckpt_model", "default --ckpt-model", default="")
    parser.addini("ckpt_model_kwargs", "default --ckpt-model-kwargs", default="")
    parser.addini("ckpt_snapshot", "default --ckpt-snapshot (relative to the ini file)", default="")
    parser.addini("ckpt_key", "default --ckpt-key", default="")
    parser.addini("ckpt_fail_on", "default --ckpt-fail-on: error, warning or info", default="error")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ckptlint: a checkpoint check added by `pytest --ckpt`")
    if config.getoption("ckpt", None) is not None:
        config.pluginmanager.register(CkptCollection(config), "ckptlint-collection")


@pytest.fixture
def ckpt_check() -> Any:
    """``ckptlint.check``: ``ckpt_check(path, model=..., snapshot=...)`` returns a Report with
    ``.assert_safe()`` and ``.assert_compatible(allow_missing=[...], ...)``."""
    from . import check

    return check


# -- collection ----------------------------------------------------------------


class CkptCollection:
    """Registered only when ``--ckpt`` was given (the pytest-mypy pattern)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def _option(self, name: str) -> str | None:
        value = self.config.getoption(name, None)
        if value:
            return str(value)
        ini = str(self.config.getini(name) or "")
        if ini and name == "ckpt_snapshot" and self.config.inipath is not None:
            ini = str(self.config.inipath.parent / ini)
        return ini or None

    def options(self) -> dict[str, Any]:
        fail_on = self._option("ckpt_fail_on") or "error"
        if fail_on not in FAIL_LEVELS:
            raise pytest.UsageError(f"ckpt_fail_on = {fail_on!r}: expected one of {', '.join(FAIL_LEVELS)}")
        snapshot = self.config.getoption("ckpt_snapshot", None)
        if snapshot:
            snapshot = str(self.config.invocation_params.dir / snapshot)
        else:
            snapshot = self._option("ckpt_snapshot")
        return {"model": self._option("ckpt_model"), "model_kwargs": self._option("ckpt_model_kwargs"),
                "snapshot": snapshot, "key": self._option("ckpt_key"), "fail_on": fail_on}

    def paths(self) -> list[tuple[str, Path]]:
        """``(display name, absolute path)`` per checkpoint, in a stable order, without duplicates."""
        base = self.config.invocation_params.dir
        out: list[tuple[str, Path]] = []
        for given in self.config.getoption("ckpt"):
            if given == CONFIGURED:
                out += [(self._display(p), p) for p in configured_checkpoints(self.config.rootpath)]
            else:
                p = Path(os.path.abspath(base / given))
                out.append((self._display(p), p))
        seen: set[Path] = set()
        return [x for x in out if not (x[1] in seen or seen.add(x[1]))]  # type: ignore[func-returns-value]

    def _display(self, path: Path) -> str:
        try:
            return path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return path.as_posix()

    @pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so they apply to our items too
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        opts = self.options()
        for name, path in self.paths():
            node = CkptFile.from_parent(session, path=path, name=name, options=opts)
            # genitems reports the collection like any file's (counts, --co, collection errors)
            items.extend(session.genitems(node))


def configured_checkpoints(rootdir: Path) -> list[Path]:
    """Every file matched by the ``files`` globs of the targets in the config found from ``rootdir``."""
    from .config import find_config, load_config

    found = find_config(str(rootdir))
    if found is None:
        raise pytest.UsageError(f"--ckpt without a path: no [tool.ckptlint] configuration found from {rootdir}")
    cfg = load_config(os.path.abspath(found))
    base = Path(found).resolve().parent
    files: set[Path] = set()
    for target in cfg.targets:
        for pattern in target.files:
            files.update(Path(os.path.abspath(base / m)) for m in glob.glob(pattern, root_dir=base, recursive=True)
                         if (base / m).is_file())
    if not cfg.targets:
        raise pytest.UsageError(f"--ckpt without a path: {found} configures no targets")
    return sorted(files)


class CkptFile(pytest.File):
    """One checkpoint; its items share one ``ckptlint.check`` report."""

    def __init__(self, *, options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self._report: tuple[FileReport | None, str | None, bool] | None = None
        self._safety_only: tuple[FileReport | None, str | None, bool] | None = None

    def target_label(self) -> str | None:
        """The compat item's parameter: the model spec or snapshot name; None when no target applies."""
        o = self.options
        if o["model"]:
            return str(o["model"])
        if o["snapshot"]:
            return os.path.basename(str(o["snapshot"]))
        from .config import config_for
        from .errors import ConfigError

        try:
            entry = config_for(str(self.path)).target_for(str(self.path))
        except ConfigError:
            return None  # the safety item reports the broken configuration
        if entry is None:
            return None
        return entry.model or os.path.basename(entry.snapshot or "snapshot")

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = [CkptItem.from_parent(self, name="safety", kind="safety")]
        label = self.target_label()
        if label is not None:
            items.append(CkptItem.from_parent(self, name=f"compat[{label}]", kind="compat"))
        return items

    def report(self, kind: str) -> tuple[FileReport | None, str | None]:
        """``(file report, None)`` or ``(None, one-line reason)``; one check per file, shared by its items.

        When the target cannot be resolved (bad spec, no torch), the compat item fails with
        that reason and the safety item still gets a safety-only report."""
        if self._report is None:
            self._report = self._check()
        fr, reason, target_error = self._report
        if target_error and kind == "safety":
            if self._safety_only is None:
                self._safety_only = self._check(with_target=False)
            fr, reason, _ = self._safety_only
        return fr, reason

    def _check(self, with_target: bool = True) -> tuple[FileReport | None, str | None, bool]:
        from . import check
        from .errors import CkptlintError, TargetError

        if not self.path.exists():
            return None, f"{self.name}: no such file", False
        if not self.path.is_file():
            return None, f"{self.name}: not a file", False
        o = self.options
        shown = os.path.relpath(self.path)  # as the user would type it, for the report and the snippet
        if shown.startswith(".."):
            shown = str(self.path)
        try:
            if with_target:
                report = check([shown], model=o["model"], model_kwargs=o["model_kwargs"],
                               snapshot=o["snapshot"], key=o["key"])
            else:  # safety only: the configuration applies, its targets do not
                report = check([shown], targets="none")
        except TargetError as e:
            return None, f"{self.name}: {' '.join(str(e).split())}", True
        except CkptlintError as e:  # ConfigError: one line
            return None, f"{self.name}: {' '.join(str(e).split())}", False
        return report.files[0], None, False


class CkptFailure(Exception):
    """An item's verdict: the text pytest shows instead of a traceback."""


class CkptItem(pytest.Item):
    def __init__(self, *, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.add_marker("ckptlint")

    @property
    def ckpt(self) -> CkptFile:
        assert isinstance(self.parent, CkptFile)
        return self.parent

    def runtest(self) -> None:
        fr, reason = self.ckpt.report(self.kind)
        if fr is None:
            raise CkptFailure(reason)
        if fr.error is not None:
            raise CkptFailure(f"{self.ckpt.name}: unreadable: {' '.join(fr.error.split())}")
        failure = safety_failure(fr, self.ckpt.options["fail_on"]) if self.kind == "safety" \
            else compat_failure(fr, self.ckpt.options["fail_on"])
        if failure:
            raise CkptFailure(failure)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CkptFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.ckpt.name}::{self.name}"


def _failing(findings: list[Finding], fail_on: str) -> list[Finding]:
    from .vocab import severity_rank

    return [f for f in findings if severity_rank(f.severity) >= severity_rank(fail_on)]


def safety_failure(fr: FileReport, fail_on: str) -> str | None:
    """The safety item's failure text (findings table and fixes), or None when it passes."""
    import dataclasses

    from .report.check_text import render_file

    findings = [f for f in fr.findings if not f.code.startswith("CK2")]
    if not _failing(findings, fail_on):
        return None
    return render_file(dataclasses.replace(fr, findings=findings, compat=None))


def compat_failure(fr: FileReport, fail_on: str) -> str | None:
    """The compat item's failure text (what differs, the fix and loading code), or None when it passes."""
    import dataclasses

    from .report.check_text import render_file

    findings = [f for f in fr.findings if f.code.startswith("CK2")]
    if not _failing(findings, fail_on):
        return None
    target = fr.compat.target if fr.compat else None
    head = f"does not load into {target}" if target else "does not load into the target"
    return f"{fr.path}: {head}\n" + render_file(dataclasses.replace(fr, findings=findings))
