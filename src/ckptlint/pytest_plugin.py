"""pytest plugin: ``pytest --ckpt PATH`` turns checkpoints into test items, plus a ``ckpt_check`` fixture.

Registered through the ``pytest11`` entry point ``ckptlint``. Loading it is cheap:
this module imports only pytest, the standard library and ``ckptlint.filenames``; ckptlint's checker (and
torch, for live model targets) is imported when an item runs.

Without ``--ckpt`` the plugin adds nothing, except for a checkpoint file named as a pytest
argument (``pytest weights/a.pt::safety``). With it, each checkpoint (a folder's are found
by ckptlint's walker, as ``ckptlint check DIR`` finds them) becomes

- ``PATH::safety`` — fails on findings other than CK2xx at or above the fail level
  (CK1xx safety, CK3xx device, …), or when the file cannot be read;
- ``PATH::compat[TARGET]`` — only when a target applies (``--ckpt-model``,
  ``--ckpt-snapshot``, the ``ckpt_model``/``ckpt_snapshot`` ini options, or a
  ``[tool.ckptlint]`` target matching the file); fails when the checkpoint does not
  load into the target (CK2xx findings at or above the fail level, after the
  config's allow patterns).

``--ckpt`` without a path checks every file matched by the ``files`` globs of the
``[tool.ckptlint]`` targets in the configuration found from pytest's rootdir.

``PATH`` in the ids is the path from pytest's rootdir, so ``-v``, ``--lf``, ``--deselect``
and ``pytest PATH::compat[TARGET]`` all use the same id. docs/pytest.md is the user's guide.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .filenames import is_checkpoint_name
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


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name, None)
    if value:
        return str(value)
    ini = str(config.getini(name) or "")
    if ini and name == "ckpt_snapshot" and config.inipath is not None:
        ini = str(config.inipath.parent / ini)
    return ini or None


def item_options(config: pytest.Config) -> dict[str, Any]:
    """The items' settings: command line over ini options (``[tool.ckptlint]`` targets come later)."""
    fail_on = _option(config, "ckpt_fail_on") or "error"
    if fail_on not in FAIL_LEVELS:
        raise pytest.UsageError(f"ckpt_fail_on = {fail_on!r}: expected one of {', '.join(FAIL_LEVELS)}")
    snapshot = config.getoption("ckpt_snapshot", None)
    if snapshot:
        snapshot = str(config.invocation_params.dir / snapshot)
    else:
        snapshot = _option(config, "ckpt_snapshot")
    return {"model": _option(config, "ckpt_model"), "model_kwargs": _option(config, "ckpt_model_kwargs"),
            "snapshot": snapshot, "key": _option(config, "ckpt_key"), "fail_on": fail_on}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CkptFile | None:
    """Without ``--ckpt``, a checkpoint file named as an argument (``pytest weights/a.pt::safety``, an
    id copied from a report) is collected, as pytest collects any ``.py`` file named so."""
    if parent.config.getoption("ckpt", None) is not None or not is_checkpoint_name(file_path.name):
        return None  # with --ckpt, CkptCollection decides
    if not parent.session.isinitpath(file_path):
        return None
    return CkptFile.create(parent, file_path, None, item_options(parent.config))


class CkptCollection:
    """Registered only when ``--ckpt`` was given (the pytest-mypy pattern).

    The checkpoints are pytest files like any other: a checkpoint named on the command line
    (``pytest --ckpt weights/ weights/a.pt::safety``) is collected by pytest's own walk, under
    its folders, so node-id selection works; otherwise every checkpoint is added after the
    tests. Either way a checkpoint's node id is its path from the rootdir, the same every run
    (``--lf``, ``--deselect`` and xdist match items by it)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._checkpoints: dict[Path, str | None] | None = None
        self.walked: set[Path] = set()
        """Checkpoints a folder walk found (not named): plainly-not-a-checkpoint ones are skipped, not failed."""
        self.named: set[Path] = set()
        """Checkpoints the command line named (collected by pytest's walk)."""

    def options(self) -> dict[str, Any]:
        return item_options(self.config)

    def paths(self) -> dict[Path, str | None]:
        """Every checkpoint (absolute path -> why it cannot be read, or None), folders walked,
        in a stable order, each once."""
        if self._checkpoints is None:
            from .errors import CkptlintError

            given: list[str] = self.config.getoption("ckpt")
            try:
                out = expand(self.config.invocation_params.dir, [g for g in given if g != CONFIGURED])
                if CONFIGURED in given:
                    out += [(p, None, False) for p in configured_checkpoints(self.config.rootpath)]
            except CkptlintError as e:  # a configuration the walk reads (exclude) is broken: one line
                raise pytest.UsageError(f"--ckpt: {' '.join(str(e).split())}") from None
            found: dict[Path, str | None] = {}
            for path, error, walked in out:
                found.setdefault(path, error)
                if walked:
                    self.walked.add(path)
            self._checkpoints = found
        return self._checkpoints

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> CkptFile | None:
        """A checkpoint named on the command line: collected in place, so ``PATH::ITEM`` selects."""
        if not parent.session.isinitpath(file_path):
            return None
        if file_path not in self.paths() and not is_checkpoint_name(file_path.name):
            return None
        self.named.add(file_path)
        return CkptFile.create(parent, file_path, self.paths().get(file_path), self.options(),
                               walked=file_path in self.walked)

    @pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so they apply to our items too
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if self.named:  # the command line picked its checkpoints
            return
        opts = self.options()
        for path, error in self.paths().items():
            # genitems reports the collection like any file's (counts, --co, --lf, collection errors)
            items.extend(session.genitems(CkptFile.create(session, path, error, opts, walked=path in self.walked)))


def expand(base: Path, given: list[str]) -> list[tuple[Path, str | None, bool]]:
    """``--ckpt`` values as ``(absolute path, why it cannot be read or None, found by a walk)``: folders walked by
    ckptlint's one walker (``.gitignore``, ``exclude``, checkpoint file names), as ``ckptlint check``
    walks them; a missing file stays, and fails with one line when its items run."""
    from .sources import resolve

    with resolve([str(base / g) for g in given]) as sources:
        return [(Path(os.path.abspath(src.path or src.name)), src.error, src.walked) for src in sources]


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


def node_path(config: pytest.Config, path: Path) -> str:
    """A checkpoint's node id: its path from the rootdir (``/``-separated), else its absolute path."""
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return path.as_posix()


class CkptFile(pytest.File):
    """One checkpoint; its items share one ``ckptlint.check`` report."""

    def __init__(self, *, options: dict[str, Any], error: str | None = None, walked: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.walked = walked
        """Found by walking a --ckpt folder: a file there that is plainly not a checkpoint is skipped."""
        self.error = error
        """Why the walk could not take it (a FIFO, a folder with no checkpoints): its items fail so."""
        self.display = node_path(self.config, self.path)
        """The path in ids and messages: from the rootdir, as the node id has it."""
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

    @classmethod
    def create(cls, parent: pytest.Collector, path: Path, error: str | None,
               options: dict[str, Any], walked: bool = False) -> CkptFile:
        """The node for ``path`` under ``parent`` (a folder, or the session), with a path-based id."""
        file: CkptFile = cls.from_parent(parent, path=path, error=error, options=options, walked=walked,
                                         nodeid=node_path(parent.config, path))
        return file

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = [CkptItem.from_parent(self, name="safety", kind="safety")]
        label = self.target_label()
        if label is not None:
            # the id carries the target as pytest's parameter part (``compat`` + ``[label]``),
            # as a parametrized test's does: --lf and ``PATH::compat[label]`` match it
            items.append(CkptItem.from_parent(self, name=f"compat[{label}]", kind="compat",
                                              nodeid=f"{self.nodeid}::compat[{label}]"))
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

        if self.error is not None:
            return None, f"{self.display}: {self.error}", False
        if not self.path.exists():
            return None, f"{self.display}: no such file", False
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
            return None, f"{self.display}: {' '.join(str(e).split())}", True
        except CkptlintError as e:  # ConfigError: one line
            return None, f"{self.display}: {' '.join(str(e).split())}", False
        # a checkpoint folder (save_pretrained) is walked again: its own report is the one named so
        mine = [fr for fr in report.files if os.path.abspath(fr.path) == str(self.path)]
        return (mine or list(report.files))[0], None, False


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
            from .rules.input import NOTE_KINDS

            if self.ckpt.walked and fr.format in NOTE_KINDS:  # a tokenizer .bin in a --ckpt folder: as `check`
                pytest.skip(f"{self.ckpt.display}: skipped: {' '.join(fr.error.split())}")
            raise CkptFailure(f"{self.ckpt.display}: unreadable: {' '.join(fr.error.split())}")
        failure = safety_failure(fr, self.ckpt.options["fail_on"]) if self.kind == "safety" \
            else compat_failure(fr, self.ckpt.options["fail_on"])
        if failure:
            raise CkptFailure(failure)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CkptFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # The failure's headline. Not the bare node id: pytest's verbose line rewrites a
        # headline that ends the id (``a.pt::safety`` -> ``a::pt::safety``); doctest items
        # use the same ``[kind] name`` form.
        return self.path, None, f"[ckptlint] {self.nodeid}"


def _failing(findings: list[Finding], fail_on: str) -> list[Finding]:
    from .vocab import severity_rank

    return [f for f in findings if severity_rank(f.severity) >= severity_rank(fail_on)]


def safety_failure(fr: FileReport, fail_on: str) -> str | None:
    """The safety item's failure text (findings table and fixes), or None when it passes."""
    from .record import replace
    from .report.check_text import render_file

    findings = [f for f in fr.findings if not f.code.startswith("CK2")]
    if not _failing(findings, fail_on):
        return None
    return render_file(replace(fr, findings=findings, compat=None))


def compat_failure(fr: FileReport, fail_on: str) -> str | None:
    """The compat item's failure text (what differs, the fix and loading code), or None when it passes."""
    from .record import replace
    from .report.check_text import render_file

    findings = [f for f in fr.findings if f.code.startswith("CK2")]
    if not _failing(findings, fail_on):
        return None
    target = fr.compat.target if fr.compat else None
    head = f"does not load into {target}" if target else "does not load into the target"
    return f"{fr.path}: {head}\n" + render_file(replace(fr, findings=findings))
