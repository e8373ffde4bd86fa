"""``ckptlint check -`` in a real process: a pipe on standard input is read; a terminal is refused, not waited on."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # starts processes

EVIL = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85q\x01Rq\x02."  # built by hand, never loaded


def _ckptlint(*args: str, data: bytes | None = None, stdin: int | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ckptlint", *args], input=data, stdin=stdin, capture_output=True,
                          timeout=120, check=False)


def test_a_pipe_is_read() -> None:
    done = _ckptlint("check", "-", "--format", "json", data=EVIL)
    (entry,) = json.loads(done.stdout)["files"]
    assert entry["path"] == "-"
    assert "CK101" in {f["code"] for f in entry["findings"]}
    assert done.returncode == 1, done.stderr


def test_a_pipe_with_plain_data_is_exit_0() -> None:
    done = _ckptlint("inspect", "-", "--format", "json", data=pickle.dumps({"a": 1}, protocol=2))
    assert done.returncode == 0 and json.loads(done.stdout)["files"][0]["path"] == "-"


def test_a_terminal_on_stdin_is_refused_not_waited_on() -> None:
    leader, follower = os.openpty()
    try:
        done = _ckptlint("check", "-", stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "ckptlint: -: standard input is a terminal: pipe the checkpoint in (`ckptlint check - < model.pt`)"]
