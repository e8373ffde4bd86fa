"""Where the pre-commit hooks draw the line: a file that is plainly not a checkpoint is a note
(``check --skip-non-checkpoints`` skips it, exit 0); a broken checkpoint is still an error (exit 2);
numpy object arrays are read as the pickle ``np.load(allow_pickle=True)`` runs. The hooks' ``files:``
pattern catches every checkpoint name people commit. In-process and torch-free; numpy (the oracle for
object arrays) and yaml only in the tests marked integration."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import CliRunner

ROOT = Path(__file__).resolve().parents[1]


class Boom:
    """Pickles as a call to os.system (numpy's np.save pickles object arrays); never loaded here."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > marker.txt",))


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(descr: str, shape: tuple[int, ...], data: bytes) -> bytes:
    """numpy's format 1.0 by hand (numpy.lib.format): magic, header length, a dict literal padded to 64."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def _np_save(array: object) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


NOT_CHECKPOINTS = {  # name -> (content, what the note says)
    "firmware.bin": (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 16, "unrecognised content"),
    # a sentencepiece-style protobuf: field tags, a float score, NUL padding
    "tokenizer.bin": (b"\n\x0b\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02\n\x07\n\x03the\x15\xcd\xcc\xcc\xbd" * 40,
                      "unrecognised content"),
    "random.bin": (b"\xcd" + random.Random(0).randbytes(8191), "unrecognised content"),
    "texts.tar": (_tar({"notes/a.txt": b"hello\n", "notes/b.txt": b"world\n"}), "tar archive of 2 files"),
    "docs.zip.pt": (_zip({"readme.txt": b"hi"}), "zip archive of 1 file"),
    "config.index.json": (b'{"pages": {"a": 1}}', "a text file"),
    "embeddings.npy": (_npy("<f4", (3, 4), struct.pack("<12f", *range(12))), "numpy array of plain values"),
    "arrays.npz": (_zip({"a.npy": _npy("<f8", (3,), bytes(24)), "b.npy": _npy("|i1", (2, 2), bytes(4))}),
                   "numpy .npz archive of plain arrays"),
}


@pytest.fixture()
def not_checkpoints(tmp_path: Path) -> list[Path]:
    paths = []
    for name, (content, _) in NOT_CHECKPOINTS.items():
        p = tmp_path / name
        p.write_bytes(content)
        paths.append(p)
    return paths


def test_plainly_not_checkpoints_are_a_note_and_exit_0(not_checkpoints: list[Path], cli: CliRunner) -> None:
    r = cli("check", "--skip-non-checkpoints", *not_checkpoints)
    assert r.returncode == 0, r.stdout + r.stderr
    notes = r.stderr.splitlines()
    assert len(notes) == len(NOT_CHECKPOINTS)
    for path, line in zip(not_checkpoints, notes, strict=True):
        assert line.startswith(f"ckptlint: {path}: skipped: "), line
        assert NOT_CHECKPOINTS[path.name][1] in line and "not a checkpoint" in line, line
    assert r.stdout == ""
    # Without the flag they are still CK902 (the plain command fails on a file that is no checkpoint),
    # each with the kind the boundary gives it.
    r = cli("check", "--format", "json", *not_checkpoints)
    assert r.returncode == 2
    files = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    assert {n: f["format"] for n, f in files.items()} == {
        "firmware.bin": "unknown", "tokenizer.bin": "unknown", "random.bin": "unknown", "texts.tar": "archive",
        "docs.zip.pt": "archive", "config.index.json": "text", "embeddings.npy": "numpy", "arrays.npz": "numpy"}
    assert {f["code"] for fr in files.values() for f in fr["findings"]} == {"CK902"}


def _broken(tmp_path: Path) -> dict[str, bytes]:
    data_pkl = pickle.dumps({"weight": list(range(64)), "bias": "b" * 80}, protocol=2)
    torch_zip = _zip({"archive/data.pkl": data_pkl, "archive/byteorder": b"little", "archive/version": b"3\n"})
    return {
        "cut.bin": torch_zip[: len(torch_zip) // 2],  # a torch zip with data.pkl, cut short
        "pickle.bin": data_pkl[: len(data_pkl) // 2],  # a pickle that breaks mid-way
        "lies.safetensors": _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 4),
        "lies.bin": _safetensors({"w": {"dtype": "F32", "shape": [400], "data_offsets": [0, 16]}}, b"\0" * 16),
        "model.safetensors.index.json": b'{"metadata": {}, "weight_map": {"w": "model-0001.safet',
        "pytorch_model.bin.index.json": b'{"metadata": {}, "weight_map": ["w"]}',
        "object.npy": _npy("|O", (2,), pickle.dumps([{"a": 1}, None], protocol=3)[:-5]),  # its pickle, cut
        "header.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 10) + b"{'a': (1,)",  # numpy raises on it
        "torch.tar": _tar({"sys_info": b"x", "pickle": b"\x80\x02}q\x00."}),  # torch's tar, no storages
    }


def test_broken_checkpoints_still_fail(tmp_path: Path, cli: CliRunner) -> None:
    broken = _broken(tmp_path)
    paths = []
    for name, content in broken.items():
        (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    r = cli("check", "--skip-non-checkpoints", "--format", "json", *paths)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "skipped" not in r.stderr
    files = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    assert set(files) == set(broken)
    for name, f in files.items():
        assert f["error"] and [x["code"] for x in f["findings"]] == ["CK901"], (name, f)
    assert "not a JSON shard index" in files["model.safetensors.index.json"]["error"]
    assert "weight_map" in files["pytorch_model.bin.index.json"]["error"]


def test_a_git_lfs_pointer_is_not_skipped(tmp_path: Path, cli: CliRunner) -> None:
    """It stands in for a checkpoint nobody checked: still exit 2, with the `git lfs pull` advice."""
    p = tmp_path / "model.safetensors"
    p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    r = cli("check", "--skip-non-checkpoints", p)
    assert r.returncode == 2 and "git lfs pull" in r.stderr and "skipped" not in r.stderr


@pytest.mark.integration  # numpy writes the files
def test_numpy_object_arrays_are_read_as_the_pickle_np_load_runs(tmp_path: Path, cli: CliRunner) -> None:
    import numpy as np

    evil = np.array([Boom(), 1.5], dtype=object)
    (tmp_path / "evil.npy").write_bytes(_np_save(evil))
    np.savez(tmp_path / "evil.npz", fine=np.zeros(2), objs=evil)
    (tmp_path / "data.npy").write_bytes(_np_save(np.array([{"lr": 0.1}, [1, 2]], dtype=object)))
    r = cli("check", "--skip-non-checkpoints", "--format", "json", tmp_path / "evil.npy", tmp_path / "evil.npz",
            tmp_path / "data.npy", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    files = {Path(f["path"]).name: f for f in json.loads(r.stdout)["files"]}
    for name in ("evil.npy", "evil.npz"):
        ck101 = [f for f in files[name]["findings"] if f["code"] == "CK101"]
        assert ck101 and "system" in ck101[0]["message"], files[name]
        assert files[name]["weights_only"]["loads"] is False
    assert files["evil.npz"]["findings"][0]["location"].startswith("objs.npy")
    # plain data in an object array: no error, only what weights_only would refuse
    assert {f["severity"] for f in files["data.npy"]["findings"]} <= {"warning", "info"}
    assert not (tmp_path / "marker.txt").exists()


HOOK_FILES = ["weights/checkpoint.pth.tar", "weights/evil.pkl", "a/b.PICKLE", "x.npy", "x.NPZ", "m.Pt", "m.pth",
              "pytorch_model.bin", "last.ckpt", "model.safetensors", "old.tar",
              "model.safetensors.index.json", "pytorch_model.bin.INDEX.JSON"]
NOT_HOOK_FILES = ["README.md", "config.json", "tokenizer.json", "train.py", "weights.tar.gz", "model.pt.txt",
                  "index.json"]


@pytest.mark.integration  # yaml comes with pre-commit
def test_hook_files_pattern_catches_every_checkpoint_name() -> None:
    import yaml

    from ckptlint.filenames import HOOK_FILES_PATTERN, is_checkpoint_name

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"ckptlint", "ckptlint-compat"}
    assert [is_checkpoint_name(f) for f in HOOK_FILES + NOT_HOOK_FILES] == \
        [True] * len(HOOK_FILES) + [False] * len(NOT_HOOK_FILES)  # what a directory walk picks up
    for hook in hooks:
        assert hook["files"] == HOOK_FILES_PATTERN, hook["id"]  # one list for walks and hooks
        pattern = re.compile(hook["files"])  # pre-commit matches it with re.search
        assert [f for f in HOOK_FILES if not pattern.search(f)] == [], hook["id"]
        assert [f for f in NOT_HOOK_FILES if pattern.search(f)] == [], hook["id"]
        assert "types" not in hook and "--skip-non-checkpoints" in hook["entry"].split()
