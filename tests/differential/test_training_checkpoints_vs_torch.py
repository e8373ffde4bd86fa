"""Training-style checkpoints (model + optimizer + scheduler + plain values) against torch's own load."""

from __future__ import annotations

import pytest
import torch
from torchvision import models as M

from _oracle import check_file, plain_metadata


def _train_step(model, opt):
    x = torch.randn(2, 3, 32, 32)
    loss = model(x).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw_amsgrad": lambda p: torch.optim.AdamW(p, lr=1e-3, amsgrad=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
}


def _checkpoint(opt_name):
    torch.manual_seed(0)
    model = M.mobilenet_v3_small(num_classes=10)
    opt = OPTIMIZERS[opt_name](model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _train_step(model, opt)
    sched.step()
    return {
        "epoch": 3,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "best_acc": 0.9,
        "history": [1.0, 2.0],
        "args": {"lr": 0.1},
    }


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_training_checkpoint(opt_name, fmt, tmp_path):
    ckpt = _checkpoint(opt_name)
    path = tmp_path / "ckpt.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=(fmt == "zip"))
    inv, loaded, recs = check_file(path)
    assert inv.format == ("torch-zip" if fmt == "zip" else "torch-legacy")
    # the optimizer really holds per-parameter state, keyed by int
    state_paths = [p for p in recs if p[:2] == ("optimizer", "state")]
    assert state_paths and all(isinstance(p[2], int) for p in state_paths)
    # plain values, as torch loaded them
    for key in ("epoch", "best_acc", "history", "args"):
        assert inv.structure[key] == loaded[key]
    assert inv.structure["epoch"] == 3
    assert inv.structure["optimizer"]["param_groups"][0]["lr"] == loaded["optimizer"]["param_groups"][0]["lr"]
    assert inv.structure["scheduler"]["last_epoch"] == loaded["scheduler"]["last_epoch"]
    assert inv.metadata["model"] == plain_metadata(loaded["model"]._metadata)


def test_same_state_dict_twice(tmp_path):
    # model and ema both point at one OrderedDict: the memo shares it, the second path is a reference.
    sd = M.squeezenet1_0().state_dict()
    path = tmp_path / "twice.pt"
    torch.save({"model": sd, "ema": sd, "copy": dict(sd.items())}, path)
    inv, loaded, recs = check_file(path)
    assert loaded["ema"] is loaded["model"]
    assert inv.structure["ema"] == {"__ref__": "model"}
    # the dict copy holds the same tensor objects: each one shares a storage with its twin
    for k in sd:
        assert recs[("copy", k)].storage_key == recs[("model", k)].storage_key
