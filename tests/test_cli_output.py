"""What ``ckptlint check`` prints: -q/-qq, the concise format, escaping of strings from the file, the
summary line's counts and words, and one finding per cause (CK105 does not repeat CK101/CK102).
Torch-free: checkpoints are written byte by byte (tests/_cli_files.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from _cli_files import NAMESPACE, full_model, safetensors, su, system_call, torch_zip, write_files

from conftest import CliResult, CliRunner


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_files(tmp_path / "ckpt")


def check(cli: CliRunner, *args: str | Path) -> CliResult:
    return cli("check", "--isolated", *args)


def findings(r: CliResult) -> list[dict[str, str]]:
    return [f for fr in json.loads(r.stdout)["files"] for f in fr["findings"]]


# -- quiet and concise ------------------------------------------------------------------------


def test_a_thousand_clean_files_print_one_line(tmp_path: Path, cli: CliRunner) -> None:
    first = safetensors(tmp_path / "f0000.safetensors")
    for i in range(1, 1000):
        shutil.copyfile(first, tmp_path / f"f{i:04d}.safetensors")
    paths = sorted(tmp_path.iterdir())
    summary = "1000 files checked: 0 errors, 0 warnings, 0 unreadable\n"
    for flags in (["-q"], ["--quiet"], ["--format", "concise"], ["--format", "concise", "-q"]):
        r = check(cli, *flags, *paths)
        assert (r.returncode, r.stdout, r.stderr) == (0, summary, ""), flags
    r = check(cli, "-qq", *paths)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_quiet_keeps_files_with_findings(files: dict[str, Path], cli: CliRunner) -> None:
    full = check(cli, files["clean"], files["evil"])
    quiet = check(cli, "-q", files["clean"], files["evil"])
    assert full.returncode == quiet.returncode == 1
    assert str(files["clean"]) in full.stdout and str(files["clean"]) not in quiet.stdout
    evil_block = next(b for b in full.stdout.split("\n\n") if b.startswith(str(files["evil"])))
    assert quiet.stdout == evil_block + "\n\n2 files checked: 1 error, 0 warnings, 0 unreadable\n"


def test_very_quiet_prints_nothing_but_errors(files: dict[str, Path], tmp_path: Path, cli: CliRunner) -> None:
    r = check(cli, "-qq", files["evil"])
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    r = check(cli, "-qq", files["evil"], files["unreadable"])
    assert r.returncode == 2 and r.stdout == ""
    reason = "safetensors tensor 'w': 800 bytes for 2 F32 elements"
    assert r.stderr.splitlines() == [f"ckptlint: {files['unreadable']}: {reason}"]
    out = tmp_path / "report.json"
    r = check(cli, "-qq", "--format", "json", "-o", out, files["evil"])  # a report asked for is written
    assert r.returncode == 1 and r.stdout == "" and json.loads(out.read_text())["files"][0]["findings"]


def test_concise_is_one_line_per_finding(files: dict[str, Path], cli: CliRunner) -> None:
    r = check(cli, "--format", "concise", files["clean"], files["evil"], files["unreadable"])
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert lines[0] == f"{files['evil']}:archive/data.pkl@11: CK101 os.system can run code or touch the system (GLOBAL)"
    assert lines[1] == f"{files['unreadable']}: CK901 safetensors tensor 'w': 800 bytes for 2 F32 elements"
    assert lines[2:] == ["3 files checked: 1 error, 0 warnings, 1 unreadable"]
    as_json = findings(check(cli, "--format", "json", files["clean"], files["evil"], files["unreadable"]))
    assert len(lines) - 1 == len(as_json)  # every finding, once


def test_format_list_names_concise(cli: CliRunner, files: dict[str, Path]) -> None:
    r = check(cli, "--format", "nope", files["clean"])
    assert r.returncode == 2 and "concise" in r.stderr and r.stderr.count("\n") == 1


# -- escaping ----------------------------------------------------------------------------------------


FORGED = "a\x1b[31m\nCK999   error       forged row"


@pytest.mark.parametrize("fmt", ["text", "concise"])
def test_strings_from_the_file_are_escaped(tmp_path: Path, cli: CliRunner, fmt: str) -> None:
    path = torch_zip(tmp_path / "esc\x1b[2J.pt", system_call(FORGED))
    r = check(cli, "--format", fmt, path)
    assert r.returncode == 1
    assert "\x1b" not in r.stdout  # no colour, no screen clearing
    assert not any(line.lstrip().startswith("CK999") for line in r.stdout.splitlines())  # no forged row
    assert "'a\\x1b[31m\\nCK999" in r.stdout or fmt == "concise"  # the key, as inspect shows it
    assert "'esc\\x1b[2J.pt'" in r.stdout or "esc\\x1b[2J.pt" in r.stdout


# -- summary counts and words ----------------------------------------------------------------------


def test_unreadable_file_counts_once(files: dict[str, Path], cli: CliRunner) -> None:
    r = check(cli, files["unreadable"])
    assert r.returncode == 2
    assert r.stdout == "1 file checked: 0 errors, 0 warnings, 1 unreadable\n"


def test_singular_and_plural(files: dict[str, Path], tmp_path: Path, cli: CliRunner) -> None:
    one = check(cli, files["evil"])
    assert one.stdout.endswith("\n1 file checked: 1 error, 0 warnings, 0 unreadable\n")
    model = torch_zip(tmp_path / "model.pt", full_model())
    r = check(cli, "--format", "json", model)
    (ck102,) = [f for f in findings(r) if f["code"] == "CK102"]
    assert ck102["message"].startswith("full-model pickle: 1 model class (torch.nn.modules.linear.Linear);")
    two = torch_zip(tmp_path / "two.pt", b"\x80\x02}(" + su("m") + b"ctorch.nn.modules.linear\nLinear\n)\x81}b"
                    + su("n") + b"ctorch.nn.modules.conv\nConv2d\n)\x81}bu.")
    (ck102,) = [f for f in findings(check(cli, "--format", "json", two)) if f["code"] == "CK102"]
    assert ck102["message"].startswith("full-model pickle: 2 model classes (")


# -- one finding per cause -------------------------------------------------------------------------


def test_ck105_does_not_repeat_ck101_or_ck102(tmp_path: Path, cli: CliRunner) -> None:
    for name, pickle, only in (("system.pt", system_call(), "CK101"), ("model.pt", full_model(), "CK102")):
        r = check(cli, "--format", "json", torch_zip(tmp_path / name, pickle))
        assert [f["code"] for f in findings(r)] == [only], r.stdout
        assert json.loads(r.stdout)["files"][0]["weights_only"]["loads"] is False  # the verdict is unchanged
    # a second cause (plain data weights_only refuses) is still CK105's, without the model class
    r = check(cli, "--format", "json", torch_zip(tmp_path / "mixed.pt", full_model(NAMESPACE)))
    by_code = {f["code"]: f["message"] for f in findings(r)}
    assert set(by_code) == {"CK102", "CK104", "CK105"}
    assert "argparse.Namespace" in by_code["CK105"] and "Linear" not in by_code["CK105"]
    assert re.search(r"fails \(torch [0-9.]+\): argparse\.Namespace(;|$)", by_code["CK105"])


def test_inspect_summary_counts_unknown_storages_in_words() -> None:
    from ckptlint.inventory import FormatFacts, Inventory, StorageRecord
    from ckptlint.report.inventory_text import summary_rows

    def total(sizes: list[int | None]) -> str:
        storages = tuple(StorageRecord(str(i), "float32", n, "cpu") for i, n in enumerate(sizes))
        inv = Inventory("x.pt", FormatFacts("torch-zip", 10, 10), (), storages, (), None, {})
        return dict(summary_rows(inv))["total storage bytes"]

    assert total([4, None]) == "4 B (1 storage of unknown size)"
    assert total([4, None, None]) == "4 B (2 storages of unknown size)"


def test_diff_escapes_keys_and_counts_in_words(tmp_path: Path, cli: CliRunner) -> None:
    a = safetensors(tmp_path / "a.safetensors", ("w", "x\x1b[31m\n+      forged"))
    b = safetensors(tmp_path / "b.safetensors", ("w", "v"))
    r = cli("diff", a, b)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "\x1b" not in r.stdout and "'x\\x1b[31m\\n+      forged'" in r.stdout
    assert not any(line.startswith("+      forged") for line in r.stdout.splitlines())  # no forged row
    assert r.stdout.endswith("\n1 removed, 1 added, 0 shape changes, 0 dtype changes, 0 renames\n")
