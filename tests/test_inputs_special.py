"""FIFOs, devices and sockets are refused before anything opens them: one line, exit 2, the next file checked.

Opening a FIFO for reading blocks until a writer comes. Each FIFO test runs under a
watchdog that opens the write end after a few seconds, so a regression (something
opened it) makes the test fail instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ckptlint
from ckptlint.sources import special_file

PICKLE = pickle.dumps({"a": 1}, protocol=2)


@contextlib.contextmanager
def _watchdog(fifo: Path, after: float = 5.0) -> Iterator[threading.Event]:
    """After ``after`` seconds, keep opening the FIFO's write end (and closing it) so a blocked reader
    sees end-of-file and returns. The event says whether that was ever needed."""
    done, fired = threading.Event(), threading.Event()

    def watch() -> None:
        if done.wait(after):
            return
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader is waiting
                time.sleep(0.02)
                continue
            fired.set()
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join(10)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.pt"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("extra", [(), ("--skip-site-pth",), ("--format", "json")])
def test_a_fifo_is_refused_without_opening_it(fifo: Path, tmp_path: Path, cli: Any, extra: tuple[str, ...]) -> None:
    good = tmp_path / "good.pt"
    good.write_bytes(PICKLE)
    with _watchdog(fifo) as fired:
        result = cli("check", str(fifo), str(good), *extra)
    assert not fired.is_set(), "ckptlint opened the FIFO for reading (the watchdog had to unblock it)"
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        (f"ckptlint: {fifo}: not a regular file (a FIFO): nothing was read; give the checkpoint file, "
        "or `-` to read standard input")]
    assert str(good) in result.stdout  # the file after it is still checked


def test_inspect_and_the_api_refuse_a_fifo(fifo: Path, cli: Any) -> None:
    with _watchdog(fifo) as fired:
        result = cli("inspect", str(fifo), "--format", "json")
        with pytest.raises(ckptlint.CheckpointError, match=r"not a regular file \(a FIFO\)"):
            ckptlint.inspect(fifo)
        report = ckptlint.check(fifo)
    assert not fired.is_set()
    assert result.returncode == 2 and json.loads(result.stdout)["files"][0]["error"].startswith("not a regular file")
    assert report.exit_code() == 2 and report.files[0].format == "unreadable"


def test_a_fifo_met_in_a_folder_walk_is_one_line(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.pt").write_bytes(PICKLE)
    os.mkfifo(tmp_path / "w" / "b.pt")
    with _watchdog(tmp_path / "w" / "b.pt") as fired:
        result = cli("check", "w", "--format", "json", cwd=tmp_path)
    assert not fired.is_set()
    assert result.returncode == 2
    assert [(f["path"], f["error"] is None) for f in json.loads(result.stdout)["files"]] == [
        ("w/a.pt", True), ("w/b.pt", False)]
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_dev_zero_is_not_a_regular_file(cli: Any, command: str) -> None:
    result = cli(command, "/dev/zero")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        ("ckptlint: /dev/zero: not a regular file (a character device): nothing was read; give the checkpoint "
        "file, or `-` to read standard input")]


def test_a_socket_is_not_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "s.pt"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        assert special_file(str(path)) is not None and "a socket" in (special_file(str(path)) or "")
    assert special_file(str(tmp_path)) is None and special_file(str(tmp_path / "missing")) is None


def test_a_fifo_under_a_model_file_name_is_refused_not_read_as_the_folder(tmp_path: Path, cli: Any) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    os.mkfifo(folder / "model.safetensors")
    (folder / "optimizer.pt").write_bytes(PICKLE)
    with _watchdog(folder / "model.safetensors") as fired:
        result = cli("check", "hf", "--format", "json", cwd=tmp_path)
    assert not fired.is_set()
    assert [(f["path"], f["error"] is None) for f in json.loads(result.stdout)["files"]] == [
        ("hf/model.safetensors", False), ("hf/optimizer.pt", True)]
    assert result.returncode == 2
