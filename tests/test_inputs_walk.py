"""Folder arguments: ``ckptlint check weights/`` walks the folder for checkpoint files.

Outside a git work tree every file is walked (no .gitignore); the git cases are in
test_inputs_gitignore.py. Paths come back sorted, each file once, with the folder's
spelling; DCP and save_pretrained folders stay one checkpoint (formats/directory.py).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

import ckptlint
from _cli_files import safetensors_file
from ckptlint.filenames import CHECKPOINT_SUFFIXES, HOOK_FILES_PATTERN, is_checkpoint_name

PICKLE = pickle.dumps({"a": 1}, protocol=2)


def _write(path: Path, data: bytes = PICKLE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _checked(cli: Any, *args: str, cwd: Path) -> tuple[int, list[str], str]:
    result = cli("check", *args, "--format", "json", cwd=cwd)
    return result.returncode, [f["path"] for f in json.loads(result.stdout)["files"]], result.stderr


def test_a_folder_is_walked_sorted_for_checkpoint_names(tmp_path: Path, cli: Any) -> None:
    for name in ("b.pt", "a.pkl", "sub/z.ckpt", "sub/deeper/c.pth.tar", "x.npy", "notes.txt", "README.md",
                 "w.PTH"):
        _write(tmp_path / "weights" / name)
    _, paths, _ = _checked(cli, "weights", cwd=tmp_path)
    assert paths == ["weights/a.pkl", "weights/b.pt", "weights/sub/deeper/c.pth.tar", "weights/sub/z.ckpt",
                     "weights/w.PTH", "weights/x.npy"]


def test_the_same_file_twice_is_checked_once(tmp_path: Path, cli: Any) -> None:
    _write(tmp_path / "w" / "a.pt")
    _write(tmp_path / "w" / "b.pt")
    os.symlink("a.pt", tmp_path / "w" / "c.pkl")  # the same file under another name
    _, paths, _ = _checked(cli, "w/a.pt", "./w/a.pt", "w", str(tmp_path / "w" / "a.pt"), cwd=tmp_path)
    assert paths == ["w/a.pt", "w/b.pt"]
    report = ckptlint.check([tmp_path / "w" / "b.pt", str(tmp_path / "w"), tmp_path / "w" / "." / "b.pt"])
    assert [Path(f.path).name for f in report.files] == ["b.pt", "a.pt"]


def test_exclude_flag_leaves_out_what_the_walk_finds_not_named_files(tmp_path: Path, cli: Any) -> None:
    for name in ("keep.pt", "old/a.pt", "old/b.pt", "x.tmp.pt", "sub/old/c.pt"):
        _write(tmp_path / "w" / name)
    _, paths, _ = _checked(cli, "w", "--exclude", "old/", "--exclude", "*.tmp.pt", cwd=tmp_path)
    assert paths == ["w/keep.pt"]
    _, paths, _ = _checked(cli, "w", "--exclude", "w/old/*", cwd=tmp_path)
    assert paths == ["w/keep.pt", "w/sub/old/c.pt", "w/x.tmp.pt"]
    _, paths, _ = _checked(cli, "w/old/a.pt", "w", "--exclude", "old", cwd=tmp_path)  # named: always checked
    assert paths == ["w/old/a.pt", "w/keep.pt", "w/x.tmp.pt"]
    assert [Path(f.path).name for f in ckptlint.check(str(tmp_path / "w"), exclude=["old", "sub", "x*"]).files] \
        == ["keep.pt"]


def test_configured_exclude_applies_to_walks(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "ckptlint.toml").write_text('exclude = ["runs/*", "*.bak.pt"]\n')
    for name in ("a.pt", "a.bak.pt", "runs/r1.pt"):
        _write(tmp_path / "w" / name)
    _write(tmp_path / "runs" / "r2.pt")
    _, paths, err = _checked(cli, "w", "runs/r2.pt", cwd=tmp_path)
    assert paths == ["w/a.pt", "w/runs/r1.pt", "runs/r2.pt"], err  # runs/* is relative to the config's folder
    code, paths, err = _checked(cli, "runs", cwd=tmp_path)
    assert code == 2 and "ckptlint: runs: a directory with no checkpoint files in it" in err
    _, paths, err = _checked(cli, "w", "runs", "--isolated", cwd=tmp_path)
    assert paths == ["w/a.bak.pt", "w/a.pt", "w/runs/r1.pt", "runs/r2.pt"], err


def test_a_folder_without_checkpoints_is_one_line_exit_2(tmp_path: Path, cli: Any) -> None:
    _write(tmp_path / "docs" / "notes.txt", b"hello")
    result = cli("check", "docs", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("ckptlint: docs: ")]
    assert len(lines) == 1 and "a directory with no checkpoint files" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_symlink_loops_are_bounded_and_one_line(tmp_path: Path, cli: Any) -> None:
    _write(tmp_path / "w" / "a.pt")
    os.symlink("..", tmp_path / "w" / "up")              # a folder loop: not followed
    os.symlink("loop.pt", tmp_path / "w" / "loop.pt")    # a file loop: one line
    result = cli("check", "w", "--format", "json", cwd=tmp_path)
    assert result.returncode == 2
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["w/a.pt", "w/loop.pt"]
    assert [line for line in result.stderr.splitlines() if "w/loop.pt" in line] == [
        line for line in result.stderr.splitlines() if line.startswith("ckptlint: w/loop.pt: ")]
    assert len(result.stderr.splitlines()) == 1 and "symbolic links" in result.stderr


def test_library_folder_is_one_checkpoint_and_the_files_beside_it_are_checked(tmp_path: Path, cli: Any) -> None:
    safetensors_file(tmp_path / "runs" / "hf" / "model.safetensors", {"fc.weight": [2, 3]})
    _write(tmp_path / "runs" / "hf" / "optimizer.pt")
    _write(tmp_path / "runs" / "hf" / "random_states_0.pkl")
    shards = tmp_path / "runs" / "sharded"
    safetensors_file(shards / "model-00001-of-00002.safetensors", {"a": [2]})
    safetensors_file(shards / "model-00002-of-00002.safetensors", {"b": [2]})
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    _, paths, _ = _checked(cli, "runs", cwd=tmp_path)
    assert paths == ["runs/hf", "runs/hf/optimizer.pt", "runs/hf/random_states_0.pkl", "runs/sharded"]
    _, paths, _ = _checked(cli, "runs/hf", cwd=tmp_path)
    assert paths == ["runs/hf", "runs/hf/optimizer.pt", "runs/hf/random_states_0.pkl"]
    (fr,) = ckptlint.check(str(shards)).files
    assert fr.format == "sharded-index" and fr.inventory is not None
    assert {t.key for t in fr.inventory.tensors} == {"a", "b"}


def test_suffix_set_and_hook_pattern_agree() -> None:
    import re

    names = ["m.pt", "m.pth", "m.bin", "m.ckpt", "m.safetensors", "m.pkl", "m.pickle", "m.pth.tar", "m.tar",
             "m.npy", "m.npz", "model.safetensors.index.json", "M.PT"]
    assert HOOK_FILES_PATTERN == r"(?i)(\.(pt|pth|bin|ckpt|safetensors|pkl|pickle|tar|npy|npz)|\.index\.json)$"
    assert all(is_checkpoint_name(n) and re.search(HOOK_FILES_PATTERN, n) for n in names)
    others = ["m.py", "m.json", "m.txt", "m.pt.txt", "index.json.bak"]
    assert not any(is_checkpoint_name(n) or re.search(HOOK_FILES_PATTERN, n) for n in others)
    assert len(CHECKPOINT_SUFFIXES) == len(set(CHECKPOINT_SUFFIXES))


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_inspect_walks_folders_too(tmp_path: Path, cli: Any, command: str) -> None:
    _write(tmp_path / "w" / "b.pt")
    _write(tmp_path / "w" / "a.pt")
    _write(tmp_path / "w" / "skip" / "c.pt")
    result = cli(command, "w", "--exclude", "skip", "--format", "json", cwd=tmp_path)
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["w/a.pt", "w/b.pt"], result.stderr


def test_expand_gives_front_ends_the_same_sources(tmp_path: Path) -> None:
    from ckptlint.sources import expand

    _write(tmp_path / "w" / "b.pt")
    _write(tmp_path / "w" / "a.pt")
    os.mkfifo(tmp_path / "w" / "c.pt")
    sources = expand([str(tmp_path / "w" / "b.pt"), tmp_path / "w", str(tmp_path / "missing.pt")])
    assert [(Path(s.name).name, s.path is not None) for s in sources] == [
        ("b.pt", True), ("a.pt", True), ("c.pt", False), ("missing.pt", True)]
    assert sources[2].error is not None and sources[2].error.startswith("not a regular file (a FIFO)")
    assert not any(s.spooled for s in sources)


def test_a_dcp_folder_is_one_checkpoint_in_a_walk(tmp_path: Path) -> None:
    from ckptlint.sources import expand

    _write(tmp_path / "ckpt" / "step1" / ".metadata")
    _write(tmp_path / "ckpt" / "step1" / "__0_0.distcp", b"\x00" * 16)
    _write(tmp_path / "ckpt" / "step1" / "extra.pt")
    _write(tmp_path / "ckpt" / "a.pt")
    names = [os.path.relpath(s.name, tmp_path) for s in expand([tmp_path / "ckpt", tmp_path / "ckpt" / "step1"])]
    assert names == ["ckpt/a.pt", "ckpt/step1", "ckpt/step1/extra.pt"]
    assert ckptlint.check(str(tmp_path / "ckpt" / "step1")).files[0].format == "dcp"


def test_a_folder_that_cannot_be_listed_is_one_line(tmp_path: Path, cli: Any) -> None:
    """Paths past PATH_MAX cannot be listed (ENAMETOOLONG, whoever runs the test, root included)."""
    _write(tmp_path / "w" / "top.pt")
    fd = os.open(tmp_path / "w", os.O_RDONLY)
    for i in range(18):  # 18 * 251 characters > 4096
        name = chr(ord("a") + i) * 250
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    result = cli("check", "w", "--format", "json", cwd=tmp_path)
    assert result.returncode == 2
    files = json.loads(result.stdout)["files"]
    assert [f["path"] for f in files][-1] == "w/top.pt" and files[-1]["error"] is None
    (line,) = result.stderr.splitlines()
    assert line.startswith("ckptlint: w/aaaa") and line.endswith(": cannot list the directory: File name too long")


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_files_a_walk_finds_that_are_plainly_not_checkpoints_are_notes(tmp_path: Path, cli: Any,
                                                                        command: str) -> None:
    _write(tmp_path / "w" / "a.pt")
    _write(tmp_path / "w" / "tokenizer.bin", bytes(range(256)) * 4)   # unrecognised binary
    _write(tmp_path / "w" / "notes.pkl", b"just some text\n")
    _write(tmp_path / "w" / "empty.pt", b"")
    result = cli(command, "w", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["w/a.pt"]
    notes = result.stderr.splitlines()
    assert [line.split(": skipped: ")[0] for line in notes] == [
        "ckptlint: w/empty.pt", "ckptlint: w/notes.pkl", "ckptlint: w/tokenizer.bin"], notes
    named = cli(command, "w/tokenizer.bin", "--format", "json", cwd=tmp_path)  # named: still a failure
    assert named.returncode == 2 and "skipped" not in named.stderr


def test_the_api_lists_what_a_walk_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "w" / "a.pt")
    _write(tmp_path / "w" / "b.bin", b"plain text, not a checkpoint\n")
    report = ckptlint.check(str(tmp_path / "w"))
    assert [Path(fr.path).name for fr in report.files] == ["a.pt"]
    assert [(Path(fr.path).name, fr.format) for fr in report.skipped] == [("b.bin", "text")]
    assert report.exit_code() == 0 and all(p != str(tmp_path / "w" / "b.bin") for p, _ in report.findings())
