"""``ckptlint check``'s arguments read without argparse, for the plain command lines hooks and scripts write.

Importing argparse, building the check parser and parsing (gettext's catalogue look-ups, shutil and
with it bz2 and lzma for the help width) is about a tenth of a small check's startup. So a command
line made only of ``check``, the check options spelled out in full (``--name value``, ``--name=value``,
``-o FILE``, ``-j N``, ``-q``/``-qq``) and one run of files is read here; anything else (``--help``, an
abbreviation, a joined short option, ``--``, a value or a file starting with ``-``, a usage error)
gives None and argparse reads it. What this returns is what argparse's ``parse_args`` returns
(tests/test_cli_args.py compares both over every option, and this table with ``_add_check``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from .cli_support import jobs_count
from .vocab import SEVERITIES, TARGETS_MODES

STORE, APPEND, COUNT, TRUE, JOBS = "store", "append", "count", "store_true", "jobs"

CHECK_OPTIONS: dict[str, tuple[str, str, Any, tuple[str, ...] | None]] = {
    "--exclude": ("exclude", APPEND, [], None),
    "--format": ("format", STORE, "text", None),
    "-o": ("output", STORE, None, None),
    "--output": ("output", STORE, None, None),
    "-q": ("quiet", COUNT, 0, None),
    "--quiet": ("quiet", COUNT, 0, None),
    "--select": ("select", STORE, None, None),
    "--extend-select": ("extend_select", STORE, None, None),
    "--ignore": ("ignore", STORE, None, None),
    "--baseline": ("baseline", STORE, None, None),
    "--write-baseline": ("write_baseline", STORE, None, None),
    "--exit-zero": ("exit_zero", TRUE, False, None),
    "--allow-global": ("allow_global", APPEND, [], None),
    "--fail-on": ("fail_on", STORE, "error", SEVERITIES),
    "--config": ("config", STORE, None, None),
    "--isolated": ("isolated", TRUE, False, None),
    "-j": ("jobs", JOBS, 0, None),
    "--jobs": ("jobs", JOBS, 0, None),
    "--skip-site-pth": ("skip_site_pth", TRUE, False, None),
    "--skip-non-checkpoints": ("skip_non_checkpoints", TRUE, False, None),
    "--model": ("model", STORE, None, None),
    "--model-kwargs": ("model_kwargs", STORE, None, None),
    "--model-config": ("model_config", STORE, None, None),
    "--snapshot": ("snapshot", STORE, None, None),
    "--targets": ("targets", STORE, "all", TARGETS_MODES),
    "--key": ("key", STORE, None, None),
}
"""Each option of ``check`` (cli._add_check): (dest, action, default, choices)."""


def parse_check(argv: Sequence[str], func: Callable[[Any], int]) -> SimpleNamespace | None:
    """argparse's namespace for ``argv`` (``check`` first) with ``func`` set, or None where argparse must
    read it (see the module docstring)."""
    if not argv or argv[0] != "check":
        return None
    values: dict[str, Any] = {dest: list(default) if kind == APPEND else default
                              for dest, kind, default, _ in CHECK_OPTIONS.values()}
    files: list[str] = []
    ended = False  # the run of files is over: a later file is argparse's usage error
    i, n = 1, len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":  # "-" is standard input, a file
            if ended:
                return None
            files.append(arg)
            continue
        ended = ended or bool(files)
        if arg.startswith("-q") and arg.strip("q") == "-":  # -q, -qq, -qqq: one count each
            values["quiet"] += len(arg) - 1
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = CHECK_OPTIONS.get(name)
        if spec is None:
            return None
        dest, kind, _, choices = spec
        if kind in (COUNT, TRUE):
            if eq:
                return None
            values[dest] = values[dest] + 1 if kind == COUNT else True
            continue
        if not eq:
            if i >= n or argv[i].startswith("-"):  # argparse: an option, or "expected one argument"
                return None
            value = argv[i]
            i += 1
        if value == "--" or (choices is not None and value not in choices):  # argparse drops a "--" value
            return None
        if kind == JOBS:
            try:
                values[dest] = jobs_count(value)
            except Exception:  # noqa: BLE001 - argparse reports it
                return None
        elif kind == APPEND:
            values[dest].append(value)
        else:
            values[dest] = value
    if not files:
        return None
    return SimpleNamespace(command="check", files=files, **values, func=func)
