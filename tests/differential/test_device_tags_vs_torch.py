"""Checkpoints whose storages are tagged cuda:0, written on a CPU-only machine.

torch.save asks the registered packages for each storage's location tag; a
tagger registered ahead of torch's own (lower priority number) makes CPU
storages save as ``cuda:0``, byte-for-byte what a GPU machine writes in the
pickle. The files load with ``map_location="cpu"``, as on any CPU box.
"""

from __future__ import annotations

import contextlib
import zipfile

import pytest
import torch
from torch.serialization import _package_registry, register_package

from _oracle import check_file


@contextlib.contextmanager
def storages_tagged(tag):
    def tagger(storage):
        return tag if storage.device.type == "cpu" else None

    def deserializer(storage, location):
        return None  # leave every load to torch's own packages

    entry = (-1000, tagger, deserializer)
    register_package(*entry)
    try:
        yield
    finally:
        _package_registry.remove(entry)


def _checkpoint():
    torch.manual_seed(0)
    w = torch.randn(4, 4)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    return {"model": model.state_dict(), "tied": {"a": w, "b": w[1:]}, "half": w.half(), "step": 7}


@pytest.mark.parametrize("tag", ["cuda:0", "cuda:1"])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_cuda_tagged_checkpoint(fmt, tag, tmp_path):
    path = tmp_path / "gpu.pt"
    with storages_tagged(tag):
        torch.save(_checkpoint(), path, _use_new_zipfile_serialization=(fmt == "zip"))
    assert _package_registry[0][0] != -1000  # the tagger is gone again
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            assert tag.encode() in z.read(pkl)
    else:
        assert tag.encode() in path.read_bytes()
    # weights_only load with map_location: a valid file, as torch sees it
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert loaded["step"] == 7
    inv, _, recs = check_file(path, map_location="cpu", device=tag)
    assert recs and {r.device for r in recs.values()} == {tag}
    assert {s.device for s in inv.storages} == {tag}


def test_untagged_checkpoint_is_cpu(tmp_path):
    path = tmp_path / "cpu.pt"
    torch.save(_checkpoint(), path)
    _inv, _, recs = check_file(path)
    assert {r.device for r in recs.values()} == {"cpu"}
