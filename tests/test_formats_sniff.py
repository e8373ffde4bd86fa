"""Format detection goes by content, not by file extension."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from ckptlint import CheckpointError


def _kind(p: Path) -> str:
    with pytest.raises(CheckpointError) as ei:
        ckptlint.inspect(p)
    return ei.value.format or ""


@pytest.mark.parametrize("name,data,kind", [
    ("empty.pt", b"", "empty"),
    ("notes.pt", b"these are my training notes\nlr=0.1\n", "text"),
    ("random.bin", bytes(range(7, 256)) * 3, "unknown"),
    ("distutils-precedence.pth", b"import os; var = 'SETUPTOOLS_USE_DISTUTILS'\n", "python-pth"),
    ("easy.pth", b"/usr/lib/python3/dist-packages\n# comment\n\n./src\n", "python-pth"),
    ("model.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "lfs-pointer"),
    ("old.pt", b"PYTORCH1" + b"\x00" * 64, "torch-preview"),
])
def test_not_a_checkpoint(tmp_path: Path, name: str, data: bytes, kind: str) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    assert _kind(p) == kind


def test_directory_and_missing(tmp_path: Path) -> None:
    assert _kind(tmp_path) == "directory"
    assert _kind(tmp_path / "nope.pt") == "missing"


def test_extension_does_not_decide(tmp_path: Path, torch: ModuleType) -> None:
    sd = {"w": torch.ones(2, 3)}
    zipped = tmp_path / "weights.safetensors"  # a torch zip under a safetensors name
    torch.save(sd, zipped)
    assert ckptlint.inspect(zipped).format == "torch-zip"
    legacy = tmp_path / "weights.bin"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert ckptlint.inspect(legacy).format == "torch-legacy"
    pth = tmp_path / "model.pth"  # a real checkpoint with the site-file extension
    torch.save(sd, pth)
    assert ckptlint.inspect(pth).format == "torch-zip"
    raw = tmp_path / "model.ckpt"
    raw.write_bytes(pickle.dumps({"epoch": 1, "lr": 0.5}, protocol=2))
    inv = ckptlint.inspect(raw)
    assert inv.format == "pickle"
    assert inv.structure == {"epoch": 1, "lr": 0.5}


def test_zip_prefix_is_whatever_the_first_entry_says(tmp_path: Path, torch: ModuleType) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0).view(2, 3)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = tmp_path / "renamed.pt"
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr("my_weights/" + info.filename.split("/", 1)[1], src.read(info))
    loaded = torch.load(out, weights_only=True)  # torch accepts any prefix
    inv = ckptlint.inspect(out)
    assert inv.facts.zip_prefix == "my_weights"
    (t,) = inv.tensors
    assert t.shape == tuple(loaded["w"].shape)


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    p = tmp_path / "plain.zip.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("stuff/readme.txt", "hello")
    with pytest.raises(CheckpointError) as ei:
        ckptlint.inspect(p)
    assert "data.pkl" in ei.value.reason


def test_tar_format_is_recognised(tmp_path: Path, torch: ModuleType) -> None:
    p = tmp_path / "ancient.pt"
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1000, "little_endian": True}, protocol=2),
        "pickle": pickle.dumps({"epoch": 7}, protocol=2),
        "storages": pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2),  # count, then the views list
        "tensors": pickle.dumps(0, protocol=2),
    }
    with tarfile.open(p, "w:", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    inv = ckptlint.inspect(p)
    assert inv.format == "torch-tar"
    assert inv.structure == {"epoch": 7}
    assert set(inv.facts.zip_entries) == set(members)
    with pytest.raises(RuntimeError, match="weights_only"):  # torch refuses the tar format under weights_only
        torch.load(p, weights_only=True)


def test_torchscript_is_told_apart(tmp_path: Path, torch: ModuleType) -> None:
    p = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), p)
    assert ckptlint.inspect(p).format == "torchscript"


def test_bytes_read_is_metadata_only(tmp_path: Path, torch: ModuleType) -> None:
    p = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(4_000_000)}, p)  # 16 MB of tensor bytes
    inv = ckptlint.inspect(p)
    assert inv.facts.file_size > 16_000_000
    assert inv.facts.bytes_read < 200_000
    legacy = tmp_path / "big_legacy.pt"
    torch.save({"w": torch.zeros(4_000_000)}, legacy, _use_new_zipfile_serialization=False)
    inv = ckptlint.inspect(legacy)
    assert inv.facts.bytes_read < 200_000
