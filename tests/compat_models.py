"""Hand-built target models for the compat tests (importable as ``compat_models:Name``).

tests/ is on sys.path for the tests in tests/; the differential suite adds it.
"""

from __future__ import annotations

import torch
from torch import nn


class ModelA(nn.Module):
    """The model a checkpoint was trained with (warm-start source)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)


class ModelB(nn.Module):
    """The same layers under new names (warm-start target)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.new_fc = nn.Linear(8, 5)


class NonPersistent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("kept", torch.zeros(4))
        self.register_buffer("cache", torch.zeros(4), persistent=False)


def _rename_old_keys(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    for k in list(state_dict):
        if k.startswith(prefix + "old_lin."):
            state_dict[prefix + "lin." + k[len(prefix + "old_lin."):]] = state_dict.pop(k)


class PreHooked(nn.Module):
    """Accepts checkpoints that call its layer ``old_lin`` (renamed by a load pre-hook)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.other = nn.Linear(3, 2)
        self.register_load_state_dict_pre_hook(_rename_old_keys)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight


class WithExtraState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.calls = 0

    def get_extra_state(self):
        return {"calls": self.calls}

    def set_extra_state(self, state):
        self.calls = state["calls"]


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.lin = nn.Linear(2, 2)


def resnet18_frozen_bn(**kwargs):
    """torchvision's resnet18 with FrozenBatchNorm2d (drops num_batches_tracked on load)."""
    from torchvision.models import resnet18
    from torchvision.ops import FrozenBatchNorm2d

    return resnet18(norm_layer=FrozenBatchNorm2d, **kwargs)
