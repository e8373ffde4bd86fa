"""Tiny targets for the training-library compat tests (issue #12): importable as ``training_models:Name``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Net(nn.Module):
    """Two Linear layers and a ReLU: what the tests wrap in Lightning, accelerate, FSDP, torch.ao."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


class StaticNet(nn.Module):
    """Net with the QuantStub/DeQuantStub pair eager static quantization needs."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.fc1 = nn.Linear(8, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.fc2(self.relu(self.fc1(self.quant(x)))))


def dynamic_quantized() -> nn.Module:
    """Net after ``torch.ao.quantization.quantize_dynamic`` (packed int8 Linear weights)."""
    torch.manual_seed(0)
    return torch.ao.quantization.quantize_dynamic(Net(), {nn.Linear}, dtype=torch.qint8)


def static_quantized(calibrate: bool = True) -> nn.Module:
    """StaticNet after eager-mode static quantization (prepare, calibrate, convert)."""
    torch.manual_seed(0)
    m: Any = StaticNet().eval()
    m.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    torch.ao.quantization.prepare(m, inplace=True)
    if calibrate:
        m(torch.randn(4, 8))
    return torch.ao.quantization.convert(m)


class Wrapped(nn.Module):
    """Net one level down (``net.``): a checkpoint of a bare Net needs a prefix fix to load here."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()


class WithNorm(nn.Module):
    """Parameters and buffers (BatchNorm's running stats, num_batches_tracked)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))
