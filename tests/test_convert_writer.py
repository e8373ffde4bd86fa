"""The safetensors writer: header layout, shard split, size parsing, the digest patched in place, and that
a failure leaves neither DEST nor a temporary file. (test_convert_safetensors_lib.py checks the same bytes
against the safetensors package itself.)"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from ckptlint.conversion.result import ConvertError
from ckptlint.conversion.writer import (
    HASH_PLACEHOLDER,
    OutTensor,
    header_bytes,
    parse_size,
    split_shards,
    write_set,
)
from ckptlint.errors import OutputError, UsageError


def _bytes(data: bytes) -> Callable[[BinaryIO], int]:
    def write(f: BinaryIO) -> int:
        return f.write(data)
    return write


def out(name: str, dtype: str, n: int, fill: int = 0) -> OutTensor:
    return OutTensor(name, dtype, (n,), n, _bytes(bytes([fill]) * n))


def test_the_header_is_laid_out_as_safetensors_writes_it() -> None:
    tensors = [out("b", "BF16", 4), out("a", "F32", 8), out("z", "U8", 1), out("c", "F32", 4), out("e", "I64", 8),
               out("d", "BOOL", 2)]
    head, ordered = header_bytes(tensors, {"format": "pt", "x": "é"})
    (n,) = struct.unpack("<Q", head[:8])
    assert len(head) == 8 + n and n % 8 == 0
    text = head[8:].decode("utf-8")
    assert text.rstrip(" ") == text.rstrip(" ").strip() and text.startswith('{"__metadata__":{"format":"pt","x":"é"},')
    header = json.loads(text)
    # widest dtype first (safetensors' Dtype enum, from the last), then by name; offsets contiguous from 0
    assert [t.name for t in ordered] == ["e", "a", "c", "b", "z", "d"] == [k for k in header if k != "__metadata__"]
    assert [header[k]["data_offsets"] for k in "eacbzd"] == [[0, 8], [8, 16], [16, 20], [20, 24], [24, 25], [25, 27]]
    assert header["a"] == {"dtype": "F32", "shape": [8], "data_offsets": [8, 16]}
    assert ", " not in text and ": " not in text  # compact, as serde_json writes it


def test_no_metadata_means_no_metadata_entry() -> None:
    head, _ = header_bytes([out("w", "F32", 4)], {})
    assert json.loads(head[8:]) == {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4]}}


@pytest.mark.parametrize(("text", "size"), [("5GB", 5 * 10**9), ("500MB", 500 * 10**6), ("1.5kb", 1500),
                                             ("123", 123), (" 2TB ", 2 * 10**12)])
def test_sizes_are_read_as_transformers_reads_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["5XB", "", "GB", "-1", "0", "nanGB", "infGB", "1e400GB"])
def test_a_bad_size_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--max-shard-size"):
        parse_size(text)


def test_shards_split_in_order_as_huggingface_hub_does() -> None:
    # its docstring's example: [6, 6, 2, 6, 2, 2] GB at 10 GB -> [6], [6+2], [6+2+2]
    sizes = [6, 6, 2, 6, 2, 2]
    shards = split_shards([out(f"t{i}", "U8", n) for i, n in enumerate(sizes)], 10)
    assert [[t.nbytes for t in s] for s in shards] == [[6], [6, 2], [6, 2, 2]]
    big = split_shards([out("a", "U8", 2), out("huge", "U8", 50), out("b", "U8", 2)], 10)
    assert [[t.name for t in s] for s in big] == [["huge"], ["a", "b"]]  # too big: a shard of its own, first
    assert split_shards([], 10) == [[]]


def test_the_digest_is_written_in_place_of_its_placeholder(tmp_path: Path) -> None:
    md = {"format": "pt", "sha": HASH_PLACEHOLDER}
    digest = "ab" * 32
    w = write_set(str(tmp_path / "m.safetensors"), [out("a", "U8", 3, 7), out("b", "U8", 2, 9)], md,
                  max_shard_size=3, overwrite=False, digest=lambda: digest, digest_field="sha")
    assert len(w.files) == 2 and w.index is not None
    for f in w.files:
        raw = Path(f).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        assert json.loads(raw[8:8 + n])["__metadata__"] == {"format": "pt", "sha": digest}
    assert Path(w.files[0]).read_bytes().endswith(b"\x07\x07\x07")


def test_a_writer_failure_leaves_no_file(tmp_path: Path) -> None:
    def fail(f: BinaryIO) -> int:
        f.write(b"\0" * 3)
        raise ConvertError("tensor 'b': the file ends inside its storage")

    dest = tmp_path / "m.safetensors"
    with pytest.raises(ConvertError, match="tensor 'b'"):
        write_set(str(dest), [out("a", "U8", 4), OutTensor("b", "U8", (8,), 8, fail)], {}, max_shard_size=4,
                  overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_a_short_write_is_an_error_not_a_corrupt_file(tmp_path: Path) -> None:
    short = OutTensor("a", "U8", (4,), 4, _bytes(b"\0\0"))
    with pytest.raises(ConvertError, match="2 bytes written for 4"):
        write_set(str(tmp_path / "m.safetensors"), [short], {}, max_shard_size=None, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_index_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors.index.json").write_text("{}")
    with pytest.raises(OutputError, match="exists"):
        write_set(str(tmp_path / "m.safetensors"), [out("a", "U8", 4), out("b", "U8", 4)], {}, max_shard_size=4,
                  overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors.index.json"]
    w = write_set(str(tmp_path / "m.safetensors"), [out("a", "U8", 4), out("b", "U8", 4)], {}, max_shard_size=4,
                  overwrite=True)
    assert json.loads((tmp_path / "m.safetensors.index.json").read_text())["weight_map"] == {
        "a": "m-00001-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"}
    assert len(w.files) == 2


def test_a_destination_that_is_not_a_regular_file_is_never_replaced(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    for name, kind in (("pipe.safetensors", "a FIFO"), ("dir.safetensors", "a folder")):
        with pytest.raises(OutputError, match=rf"not a regular file \({kind}\)"):
            write_set(str(tmp_path / name), [out("a", "U8", 4)], {}, max_shard_size=None, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.safetensors", "pipe.safetensors"]
    assert (tmp_path / "dir.safetensors").is_dir() and list((tmp_path / "dir.safetensors").iterdir()) == []


def test_many_shards_never_hold_many_files_open(tmp_path: Path) -> None:
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))  # what this process already holds
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(highest + 32, hard), hard))
    try:  # 300 shards, 32 spare descriptors: each shard is closed before the next is opened
        w = write_set(str(tmp_path / "m.safetensors"), [out(f"t{i:03d}", "U8", 2, i % 256) for i in range(300)],
                      {"sha": HASH_PLACEHOLDER}, max_shard_size=2, overwrite=False, digest=lambda: "c" * 64,
                      digest_field="sha")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(w.files) == 300 and Path(w.files[-1]).name == "m-00300-of-00300.safetensors"
    raw = Path(w.files[-1]).read_bytes()
    assert b'"sha":"' + b"c" * 64 + b'"' in raw and raw.endswith(bytes([299 % 256]) * 2)
