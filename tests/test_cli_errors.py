"""Errors that stop a command are one line and exit 2, never a traceback and never exit 1 (which means
"findings"): output files in missing folders, selectors that match no rule, configuration files that
do not parse. Torch-free: the checkpoints are written byte by byte (tests/_cli_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli_files import write_files

from conftest import CliResult, CliRunner
from plugin_example.make_dist import install


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_files(tmp_path / "ckpt")


def one_error_line(r: CliResult, *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one ``ckptlint: ...`` line on stderr containing every needle."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckptlint: "), r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def codes(r: CliResult) -> set[str]:
    return {f["code"] for fr in json.loads(r.stdout)["files"] for f in fr["findings"]}


# -- output into a missing folder ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-o", "--output", "--write-baseline"])
def test_check_output_into_a_missing_folder(files: dict[str, Path], tmp_path: Path, cli: CliRunner,
                                           flag: str) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.json"
    r = cli("check", files["evil"], flag, target, "--isolated")
    one_error_line(r, str(target), "no such directory")
    assert not target.parent.exists()
    # a folder given as the output file: the same kind of line
    one_error_line(cli("check", files["clean"], flag, tmp_path, "--isolated"), str(tmp_path), "cannot write")


def test_snapshot_output_into_a_missing_folder_fails_before_building(tmp_path: Path, cli: CliRunner) -> None:
    # the spec names a module that does not exist: the folder is checked first, so the error is about it
    target = tmp_path / "missing" / "snap.json"
    one_error_line(cli("snapshot", "nosuchpkg.models:Net", "-o", target), str(target), "no such directory")


def test_write_baseline_counts_in_words(files: dict[str, Path], tmp_path: Path, cli: CliRunner) -> None:
    r = cli("check", files["evil"], "--write-baseline", tmp_path / "b.json", "--isolated")
    assert r.returncode == 0 and r.stdout.endswith(": 1 finding accepted as the baseline\n"), r.stdout


# -- selectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--select", "XYZ999", "'XYZ999' matches no rule"),
    ("--select", "", "no codes given"),
    ("--select", " , ", "no codes given"),
    ("--ignore", "CK2O3", "'CK2O3' matches no rule"),  # a letter O where a zero was meant
    ("--ignore", "", "no codes given"),
    ("--extend-select", "CK1O", "'CK1O' matches no rule"),
    ("--select", "CK101,CK9999", "'CK9999' matches no rule"),
])
def test_bad_selector_is_one_line(files: dict[str, Path], cli: CliRunner, flag: str, value: str,
                                  needle: str) -> None:
    one_error_line(cli("check", files["evil"], flag, value, "--isolated"), flag, needle)


def test_all_selects_everything(files: dict[str, Path], cli: CliRunner) -> None:
    default = cli("check", files["evil"], "--format", "json", "--isolated")
    assert default.returncode == 1 and "CK101" in codes(default)
    everything = cli("check", files["evil"], "--format", "json", "--isolated", "--select", "all")
    assert everything.returncode == 1 and codes(everything) == codes(default)
    # a named prefix is more specific than ALL, so it still wins
    r = cli("check", files["evil"], "--format", "json", "--isolated", "--select", "ALL", "--ignore", "CK101")
    assert r.returncode == 0 and "CK101" not in codes(r)
    only = cli("check", files["evil"], "--format", "json", "--isolated", "--ignore", "ALL", "--select", "CK101")
    assert codes(only) == {"CK101"}


def test_lower_case_selectors_in_config(files: dict[str, Path], tmp_path: Path, cli: CliRunner) -> None:
    (tmp_path / "ckptlint.toml").write_text('select = ["ck101"]\n')
    r = cli("check", files["evil"], "--format", "json")
    assert r.returncode == 1 and codes(r) == {"CK101"}


@pytest.mark.parametrize(("body", "needle"), [
    ('select = ["CK999"]', "select: 'CK999' matches no rule"),
    ('ignore = ["CK2O3"]', "ignore: 'CK2O3' matches no rule"),
    ('extend-select = ["XYZ"]', "extend-select: 'XYZ' matches no rule"),
    ('select = []', "select is empty"),
    ('select = [""]', "an empty code"),
    ('[tool.ckptlint.severity]\nCK8 = "info"', "severity: 'CK8' matches no rule"),
    ('[tool.ckptlint.per-file-ignores]\n"*.pt" = ["CK1O1"]', "'CK1O1' matches no rule"),
])
def test_unknown_codes_in_config(files: dict[str, Path], tmp_path: Path, cli: CliRunner, body: str,
                                 needle: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.ckptlint]\n{body}\n")
    one_error_line(cli("check", files["evil"]), str(pyproject), needle)


def test_plugin_codes_are_valid_selectors(files: dict[str, Path], tmp_path: Path, cli: CliRunner) -> None:
    site = tmp_path / "site"
    install(site)
    assert cli("check", files["clean"], "--select", "EX001", "--isolated", pythonpath=[site]).returncode == 0
    one_error_line(cli("check", files["clean"], "--select", "EX001", "--isolated"), "'EX001' matches no rule")


# -- configuration files that do not parse -----------------------------------------------------


@pytest.mark.parametrize("name", ["pyproject.toml", "ckptlint.toml"])
def test_config_that_does_not_parse_is_an_error(files: dict[str, Path], tmp_path: Path, cli: CliRunner,
                                                name: str) -> None:
    table = "[tool.ckptlint]\n" if name == "pyproject.toml" else ""
    (tmp_path / name).write_text(f"{table}forbid-legacy-format = true\nselect = = [\"CK1\"]\n")
    line = 3 if table else 2
    one_error_line(cli("check", files["clean"]), str(tmp_path / name), "not valid TOML", f"line {line}")


def test_broken_pyproject_of_another_tool_is_passed_over(tmp_path: Path, cli: CliRunner) -> None:
    """Only the config in use is an error: a pyproject.toml without [tool.ckptlint] that does not parse
    is passed over, one with the table is reported (it used to be passed over too, turning policies off)."""
    files = write_files(tmp_path / "proj" / "ckpt")
    pyproject = tmp_path / "proj" / "pyproject.toml"
    pyproject.write_text('[tool.black]\nline-length = = 3\n')
    (tmp_path / "ckptlint.toml").write_text('ignore = ["CK101"]\n')  # the next config up is the one in use
    r = cli("check", files["evil"], "--format", "json")
    assert r.returncode == 0 and "CK101" not in codes(r), (r.stdout, r.stderr)
    pyproject.write_text('[tool.black]\nline-length = = 3\n[tool.ckptlint]\nignore = []\n')
    one_error_line(cli("check", files["evil"]), str(pyproject), "not valid TOML", "line 2")


