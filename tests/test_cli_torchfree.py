"""Without torch: every command with every flag is one line + exit 2 or a report, never a traceback.

Where torch is installed, ``sys.modules["torch"] = None`` makes ``import torch`` raise ImportError for
real (Python's documented way to block an import); ``tox -e py310`` runs the unit tests here on an
install without torch at all. The flag matrix is generated from ``build_parser()``, so a new flag is
covered the day it is added.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _cli_files import write_files
from ckptlint.cli import build_parser

from conftest import CliResult, CliRunner

REPO = Path(__file__).resolve().parents[1]
TARGET_MODULE = "import torch\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
NO_TORCH = {"CKPTLINT_NO_CACHE": "1"}
RUNNER = ("import sys; sys.modules['torch'] = None; from ckptlint.cli import main; "
          "raise SystemExit(main(sys.argv[1:]))")
"""``python -c RUNNER ARGS``: the CLI in a process where ``import torch`` fails."""


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("torch", "torchvision", "transformers", "peft", "timm"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a target module that needs torch, and checkpoints (torch-free, byte by byte)."""
    (tmp_path / "netmod.py").write_text(TARGET_MODULE)
    write_files(tmp_path)
    return tmp_path


def needs_torch(r: CliResult) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    (line,) = r.stderr.splitlines()
    assert line.startswith("ckptlint: "), line
    # built-in targets say how to get torch; the library resolver names both libraries it needs
    assert ("needs torch" in line and "pip install torch" in line) or "needs transformers and torch" in line, line
    assert "Traceback" not in r.stdout + r.stderr


def _hook_entry(hook_id: str) -> list[str]:
    """The ``entry`` of a hook in .pre-commit-hooks.yaml, without the leading ``ckptlint``."""
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    block = text.split(f"- id: {hook_id}\n", 1)[1].split("\n- id:", 1)[0]
    entry = next(line.split(":", 1)[1].strip() for line in block.splitlines() if line.strip().startswith("entry:"))
    words = entry.split()
    assert words[0] == "ckptlint", entry
    return words[1:]


TORCH_CASES: dict[str, list[str]] = {
    "check --model": ["check", "evil.pt", "--model", "netmod:Net"],
    "check --model --snapshot": ["check", "evil.pt", "--model", "netmod:Net", "--snapshot", "missing.json"],
    "snapshot -o": ["snapshot", "netmod:Net", "-o", "snap.json"],
    "snapshot --verify": ["snapshot", "netmod:Net", "--verify", "snap.json"],
}
LIBRARY_TARGET = ["snapshot", "transformers:BertModel", "--model-kwargs", '{"config": "."}', "-o", "s.json"]


def _with_target(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.ckptlint]\n[[tool.ckptlint.targets]]\nfiles = ["*.pt"]\n'
                                            'model = "netmod:Net"\n')


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_live_target_without_torch_is_one_line(project: Path, cli: CliRunner, no_torch: None, case: str) -> None:
    if case == "check --model --snapshot":
        (project / "missing.json").write_text("{}")  # read after the live class: torch is asked for first
    needs_torch(cli(*TORCH_CASES[case], cwd=project, env=NO_TORCH))


@pytest.mark.parametrize("hook", ["ckptlint", "ckptlint-compat"])
def test_configured_target_and_the_hooks_without_torch(project: Path, cli: CliRunner, no_torch: None,
                                                       hook: str) -> None:
    _with_target(project)
    r = cli(*_hook_entry(hook), "evil.pt", cwd=project, env=NO_TORCH)
    if hook == "ckptlint":  # snapshots only: torch is never needed, the findings are the answer
        assert r.returncode == 1 and "CK101" in r.stdout and r.stderr == "", (r.stdout, r.stderr)
    else:
        needs_torch(r)
    needs_torch(cli("check", "evil.pt", cwd=project, env=NO_TORCH))  # plain check: the same configured target


def test_without_torch_in_a_real_process(project: Path, run_python: Callable[..., Any]) -> None:
    """The same, where the process itself cannot import torch (the console's own exit path)."""
    _with_target(project)
    for args in (*TORCH_CASES.values(), LIBRARY_TARGET, _hook_entry("ckptlint-compat") + ["evil.pt"]):
        p = run_python("-c", RUNNER, *args, cwd=project, env=NO_TORCH)
        needs_torch(CliResult(p.returncode, p.stdout, p.stderr))


# -- every command, every flag --------------------------------------------------------------------

BAD = "{bad\x1b[31m"
"""A value no flag accepts as such (not JSON, not a code, not a path, with an escape sequence)."""


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _values(action: argparse.Action, files: dict[str, str]) -> list[list[str]]:
    """Argument lists that exercise one flag: each choice, or a good file, an unreadable one, a bad value."""
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return [[flag]] + ([[flag, flag]] if isinstance(action, argparse._CountAction) else [])
    values = [*(action.choices or ()), BAD] if action.choices else [files["clean"], files["unreadable"], BAD]
    return [[flag, str(v)] for v in values]


def _positionals(command: str, files: dict[str, str]) -> list[list[str]]:
    """Inputs for a command's positionals: a clean file, one with findings, an unreadable one."""
    ckpts = [files["clean"], files["evil"], files["unreadable"]]
    if command == "snapshot":
        return [["netmod:Net"], [BAD]]
    if command == "rules":
        return [[], ["CK101"], [BAD]]
    if command == "diff":
        clean = files["clean"]
        return [[clean, clean], [clean, files["evil"]], [files["unreadable"], clean]]
    if command == "convert":  # SRC DEST; the matrix's --snapshot/--model values need no torch to fail cleanly
        return [[c, "out.safetensors"] for c in ckpts]
    if command == "check":  # with a target too, so --key and friends reach the compat analysis
        return [[c] for c in ckpts] + [[files["clean"], "--snapshot", files["snapshot"]]]
    return [[c] for c in ckpts]


def _runs(files: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    for action in build_parser()._actions:  # ckptlint's own flags (--help, --version), and none at all
        if action.option_strings:
            yield "", [action.option_strings[-1]]
    yield "", []
    for command, parser in _subcommands().items():
        exclusive = {a for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
        base = [] if not exclusive else [sorted(exclusive, key=lambda a: a.dest)[0].option_strings[-1], "out.json"]
        flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        for action, positional in itertools.product(flags, _positionals(command, files)):
            for value in _values(action, files):
                extra = [] if action in exclusive else base
                yield command, [command, *positional, *extra, *value]


def test_every_command_with_every_flag(tmp_path: Path, cli: CliRunner, no_torch: None) -> None:
    names = {k: v.name for k, v in write_files(tmp_path / "names").items()}  # relative to each run's folder
    count = 0
    for i, (command, argv) in enumerate(_runs(names)):
        run = tmp_path / str(i)  # fresh files: an output flag may have overwritten a checkpoint
        write_files(run)
        (run / "netmod.py").write_text(TARGET_MODULE)
        r = cli(*argv, cwd=run, env=NO_TORCH)
        count += 1
        text = r.stdout + r.stderr
        assert "Traceback" not in text and "internal error" not in text, (argv, text)
        assert "\x1b" not in text, (argv, text)  # a flag value's escape sequence is shown escaped
        assert r.returncode in (0, 1, 2), (argv, r)
        errors = [line for line in r.stderr.splitlines() if line]
        if r.returncode == 2:
            assert errors and all(line.startswith("ckptlint: ") for line in errors), (argv, r.stderr)
        if r.returncode == 1:  # findings, never an error
            assert command in ("check", "diff", "snapshot") and not errors, (argv, r)
        asked_for_help = "--help" in argv or "--version" in argv
        if names["unreadable"] in argv[1:2] and not asked_for_help:
            assert r.returncode == 2, (argv, r)  # an unreadable input is exit 2, whatever the flags
    assert count > 150
    # the matrix is generated from the parser: every flag of every subcommand was driven
    seen = {(command, word) for command, argv in _runs(names) for word in argv if word.startswith("-")}
    assert ("", "--version") in seen and ("", "--help") in seen
    for command, parser in _subcommands().items():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert (command, action.option_strings[-1]) in seen
    assert {c for c, _ in _runs(names)} == {"", "inspect", "check", "snapshot", "diff", "rules", "convert"}
