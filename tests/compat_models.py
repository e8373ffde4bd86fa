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


class RejectsExtraState(WithExtraState):
    """Its ``set_extra_state`` only takes state of version 2 (torch's load then raises ValueError)."""

    def set_extra_state(self, state):
        if not isinstance(state, dict) or state.get("version") != 2:
            raise ValueError("unsupported extra state (want version 2)")
        self.calls = state["calls"]


VGG_CFG = [8, "M", 16, "M", 16, 16, "M"]


def mini_vgg(batch_norm: bool = False, num_classes: int = 5):
    """torchvision's VGG layer builder, small: with ``batch_norm`` every conv after the first moves
    (vgg11 -> vgg11_bn)."""
    from torchvision.models.vgg import make_layers

    features = make_layers(VGG_CFG, batch_norm=batch_norm)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(16, num_classes))


def mini_vgg_bn(num_classes: int = 5):
    return mini_vgg(True, num_classes)


def mini_densenet(num_classes: int = 3):
    """torchvision's DenseNet, tiny (its legacy checkpoints say ``norm.1`` for ``norm1``)."""
    from torchvision.models import DenseNet

    return DenseNet(growth_rate=4, block_config=(1, 2), num_init_features=8, bn_size=2, num_classes=num_classes)


class Normed(nn.Module):
    """A LayerNorm between two layers (old checkpoints call its weight/bias gamma/beta)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.out = nn.Linear(6, 3)


def weight_normed(new: bool = True):
    """A weight-normed Linear: the parametrizations API (``new``) or the old ``weight_g/weight_v`` one."""
    from torch.nn.utils import parametrizations, weight_norm

    lin = nn.Linear(4, 3)
    if new:
        return nn.Sequential(parametrizations.weight_norm(lin), nn.ReLU())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.Sequential(weight_norm(lin), nn.ReLU())


def weight_normed_old():
    return weight_normed(False)


def spectral_normed(new: bool = True):
    """A spectral-normed Linear: parametrizations (``new``) or the old ``weight_orig/_u/_v`` hooks."""
    from torch.nn.utils import parametrizations, spectral_norm

    lin = nn.Linear(4, 3)
    return nn.Sequential(parametrizations.spectral_norm(lin) if new else spectral_norm(lin), nn.ReLU())


def spectral_normed_old():
    return spectral_normed(False)


class Conv1DStyle(nn.Module):
    """Two Linears; a GPT-2 style checkpoint stores their weights transposed ([in, out])."""

    def __init__(self) -> None:
        super().__init__()
        self.c_fc = nn.Linear(4, 6)
        self.c_proj = nn.Linear(6, 4)


class LazyHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.head = nn.LazyLinear(2)


class TensorExtraState(nn.Module):
    """Keeps its extra state as a tensor (as Transformer Engine does) and checks its values on load."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def get_extra_state(self):
        return torch.full((3,), 7.0)

    def set_extra_state(self, state):
        if not torch.equal(state, torch.full((3,), 7.0)):
            raise ValueError("bad extra state")


class _MiniBertLayer(nn.Module):
    """BERT's layer naming: three LayerNorm-shaped modules per layer with the same shapes."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.attention = nn.Module()
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.attention.output.LayerNorm = nn.LayerNorm(d)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, 2 * d)
        self.output = nn.Module()
        self.output.dense = nn.Linear(2 * d, d)
        self.output.LayerNorm = nn.LayerNorm(d)


class MiniBert(nn.Module):
    """A BERT base model's key layout (embeddings before the encoder; not in name order)."""

    def __init__(self, d: int = 8, layers: int = 2) -> None:
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(20, d)
        self.embeddings.position_embeddings = nn.Embedding(10, d)
        self.embeddings.LayerNorm = nn.LayerNorm(d)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_MiniBertLayer(d) for _ in range(layers))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(d, d)


class MiniBertForSequenceClassification(nn.Module):
    def __init__(self, num_labels: int = 3) -> None:
        super().__init__()
        self.bert = MiniBert()
        self.classifier = nn.Linear(8, num_labels)


def mobilenet_small_5() -> nn.Module:
    """A torchvision model with many module classes (a whole-module pickle's allowlist)."""
    import torchvision

    return torchvision.models.mobilenet_v3_small(num_classes=5)


def mobilenet_small_7() -> nn.Module:
    import torchvision

    return torchvision.models.mobilenet_v3_small(num_classes=7)
