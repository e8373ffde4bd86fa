"""cli_args reads a plain ``check`` command line exactly as argparse does, and leaves the rest to argparse."""

from __future__ import annotations

import argparse
import itertools

import pytest

from ckptlint.cli import build_parser, cmd_check
from ckptlint.cli_args import APPEND, CHECK_OPTIONS, COUNT, JOBS, STORE, TRUE, parse_check
from ckptlint.cli_support import jobs_count

KINDS = {argparse._StoreAction: STORE, argparse._AppendAction: APPEND, argparse._CountAction: COUNT,
         argparse._StoreTrueAction: TRUE}


def _check_parser() -> argparse.ArgumentParser:
    (sub,) = (a for a in build_parser("check")._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["check"]
    return parser


def test_the_table_is_the_check_parser() -> None:
    declared = {}
    for action in _check_parser()._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        kind = JOBS if action.type is jobs_count else KINDS[type(action)]
        for option in action.option_strings:
            declared[option] = (action.dest, kind, action.default, tuple(action.choices) if action.choices else None)
    assert declared == CHECK_OPTIONS


def _argvs() -> list[list[str]]:
    """Every option in each spelling, with good and bad values, before, after and between files."""
    options: list[list[str]] = [[]]
    for option, (_, kind, _, choices) in CHECK_OPTIONS.items():
        if kind in (COUNT, TRUE):
            options += [[option], [option, option], [option + "=1"]]
            continue
        values = list(choices) + ["nope"] if choices else ["4", "0", " 2", "x", "\u00b2", "-1"] if kind == JOBS \
            else ["v", "", "a=b", "-v", "--", "check"]
        for value in values:
            options += [[option, value], [option + "=" + value]]
        options += [[option]]
    options += [["-qq"], ["-qqq"], ["-qj", "2"], ["-j4"], ["-oout"], ["-o=out"], ["--form", "json"], ["-h"],
                ["--help"], ["--"], ["--quiet", "-q"], ["--exclude", "a", "--exclude", "b"], ["--nope"]]
    argvs = []
    for opts in options:
        argvs += [["check", *opts, "a.pt"], ["check", "a.pt", "b.pt", *opts], ["check", "a.pt", *opts, "b.pt"],
                  ["check", *opts], ["check", *opts, "-"], ["check", *opts, "-x.pt"], ["check", *opts, ""]]
    argvs += [["check", *a, *b, "f"] for a, b in itertools.product(options[1:12], options[40:50])]
    argvs += [[], ["check"], ["inspect", "a.pt"], ["--version"], ["-h", "check", "a"], ["checks", "a.pt"]]
    return argvs


def _argparse(argv: list[str]) -> dict[str, object] | None:
    try:
        return vars(build_parser("check").parse_args(argv))
    except SystemExit:
        return None


def test_a_plain_check_line_is_read_as_argparse_reads_it(capsys: pytest.CaptureFixture[str]) -> None:
    read = 0
    for argv in _argvs():
        fast = parse_check(argv, cmd_check)
        if fast is not None:
            assert vars(fast) == _argparse(argv), argv
            read += 1
    capsys.readouterr()
    assert read > 500  # most lines are read here, not by argparse


@pytest.mark.parametrize("argv", [
    ["check", "-qq", "a.pt"], ["check", "a.pt", "b.pt", "--format=json", "-j", "2", "--fail-on", "warning"],
    ["check", "-", "--exclude", "x", "--exclude=y", "--allow-global", "m.n", "-q", "--quiet"],
    ["check", "--skip-site-pth", "--skip-non-checkpoints", "--targets", "snapshots", "--select", "", "a"],
])
def test_hook_lines_need_no_argparse(argv: list[str]) -> None:
    fast = parse_check(argv, cmd_check)
    assert fast is not None and vars(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", [
    ["check", "-h"], ["check", "--form", "json", "a"], ["check", "a", "-q", "b"], ["check", "-j", "x", "a"],
    ["check", "--fail-on", "fatal", "a"], ["check"], ["check", "--", "-a"], ["check", "-oout", "a"],
    ["check", "--isolated=1", "a"], ["check", "--format", "-x", "a"], ["inspect", "a"], ["--version"],
])
def test_the_rest_is_left_to_argparse(argv: list[str]) -> None:
    assert parse_check(argv, cmd_check) is None
