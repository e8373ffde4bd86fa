"""safety/locations.py against torch's own ``default_restore_location`` and ``torch.load``.

A tag is restorable when one of torch's registered deserializers takes it: torch then either
restores the storage or fails for want of that device on this machine (a device error, not
"don't know how to restore"). Every other tag fails on every machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.serialization import default_restore_location

from ckptlint.checker import check_file
from ckptlint.safety.locations import restorable

TAGS = ["cpu", "meta", "mps", "mps:1", "cuda", "cuda:0", "cuda:7", "cuda3", "xpu", "xpu:0", "hpu:0", "mtia",
        "privateuseone", "privateuseone:1", "cpt", "cp\n", "cpu:0", "CPU", "Cuda", "gpu", "", "0", "cudax",
        " cpu", "cpu ", "meta:0", "tpu", "ipu", "cuda:", "xpu_", "hpu1x"]


def _torch_knows(tag: str) -> bool:
    try:
        default_restore_location(torch.UntypedStorage(4), tag)
    except RuntimeError as e:
        return "don't know how to restore data location" not in str(e)
    except Exception:  # noqa: BLE001 - a device module missing or unusable here: the tag was taken
        return True
    return True


@pytest.mark.parametrize("tag", TAGS)
def test_restorable_is_torchs_registry(tag: str) -> None:
    assert restorable(tag) == _torch_knows(tag)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("tag", [b"cpt", b"cpU", b"gpu"])
def test_retagged_checkpoint_verdict_is_torchs(tmp_path: Path, zip_format: bool, tag: bytes) -> None:
    p = tmp_path / "t.pt"
    torch.save({"w": torch.arange(4.0), "step": 3}, p, _use_new_zipfile_serialization=zip_format)
    p.write_bytes(p.read_bytes().replace(b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00" + tag))
    with pytest.raises(RuntimeError, match="don't know how to restore data location"):
        torch.load(p, weights_only=True)
    assert torch.load(p, weights_only=True, map_location="cpu")["step"] == 3  # the tag is never looked at
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False
    assert fr.inventory is not None and not fr.inventory.stops
