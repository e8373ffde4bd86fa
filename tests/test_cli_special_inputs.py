"""Flags that name a file to read (--config, --baseline, --snapshot, --model-config, snapshot --verify) refuse a
FIFO or a device: one line, exit 2, before any work — never a hang (a FIFO blocks its reader until a writer
comes, /dev/zero never ends).

Each FIFO case runs under test_inputs_special's watchdog, which opens the write end after a few seconds: a
regression (something opened the FIFO) then fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import ckptlint
from ckptlint.errors import ConfigError
from ckptlint.selection import Overrides
from ckptlint.targets.spec import TargetError
from test_inputs_special import _watchdog

from conftest import CliRunner

CASES = [
    ("check", "--config"),
    ("check", "--baseline"),
    ("check", "--snapshot"),
    ("check", "--model-config"),
    ("snapshot", "--verify"),
]


def _argv(command: str, flag: str, path: str, good: Path) -> list[str]:
    if command == "snapshot":
        return ["snapshot", "torch.nn:Linear", "--model-kwargs", '{"in_features": 2, "out_features": 2}', flag, path]
    extra = ["--model", "torch.nn:Linear"] if flag == "--model-config" else []
    return ["check", str(good), *extra, flag, path]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    return path


@pytest.mark.parametrize(("command", "flag"), CASES)
def test_a_fifo_given_to_a_file_flag_is_one_line_and_exit_2(command: str, flag: str, good: Path, tmp_path: Path,
                                                             cli: CliRunner) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with _watchdog(fifo, after=3.0) as fired:
        result = cli(*_argv(command, flag, str(fifo), good))
    assert not fired.is_set(), f"{flag} opened the FIFO (the watchdog had to unblock it)"
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [f"ckptlint: {flag} {fifo}: not a regular file (a FIFO): nothing was read"]
    assert result.stdout == ""


@pytest.mark.parametrize(("command", "flag"), CASES)
def test_a_device_given_to_a_file_flag_is_one_line_and_exit_2(command: str, flag: str, good: Path,
                                                              cli: CliRunner) -> None:
    # /dev/null, not /dev/zero: a regression then fails (empty input) instead of reading forever
    result = cli(*_argv(command, flag, "/dev/null", good))
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f"ckptlint: {flag} /dev/null: not a regular file (a character device): nothing was read"]


def test_the_api_refuses_a_fifo_config_baseline_and_snapshot(good: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with _watchdog(fifo, after=3.0) as fired:
        with pytest.raises(ConfigError, match=r"not a regular file \(a FIFO\)"):
            ckptlint.check(good, config=str(fifo))
        with pytest.raises(ConfigError, match=r"^baseline .*: not a regular file \(a FIFO\)"):
            ckptlint.check(good, overrides=Overrides(baseline=str(fifo)))
        with pytest.raises(TargetError, match=r"^snapshot .*: not a regular file \(a FIFO\)"):
            ckptlint.check(good, snapshot=str(fifo))
    assert not fired.is_set()
