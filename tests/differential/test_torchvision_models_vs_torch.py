"""torchvision state_dicts, whole-model pickles and TorchScript archives against torch's own load."""

from __future__ import annotations

import warnings

import pytest
import torch
from torchvision import models as M

import ckptlint

from _oracle import assert_inventory_matches, check_file, plain_metadata, walk

MODELS = {
    "resnet18": lambda: M.resnet18(),
    "resnet50": lambda: M.resnet50(),
    "mobilenet_v3_small": lambda: M.mobilenet_v3_small(),
    "efficientnet_b0": lambda: M.efficientnet_b0(),
    "densenet121": lambda: M.densenet121(),
    "vgg11": lambda: M.vgg11(),
    "squeezenet1_0": lambda: M.squeezenet1_0(),
    "shufflenet_v2_x0_5": lambda: M.shufflenet_v2_x0_5(),
    "convnext_tiny": lambda: M.convnext_tiny(),
    "vit_b_16": lambda: M.vit_b_16(),
    "regnet_y_400mf": lambda: M.regnet_y_400mf(),
    "mnasnet0_5": lambda: M.mnasnet0_5(),
    "googlenet": lambda: M.googlenet(aux_logits=False, init_weights=True),
    "fasterrcnn_mobilenet_v3_large_fpn":
        lambda: M.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None),
    "deeplabv3_mobilenet_v3_large":
        lambda: M.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None),
    "swin_t": lambda: M.swin_t(),
    "maxvit_t": lambda: M.maxvit_t(),
}

SMALL = ["resnet18", "mobilenet_v3_small", "squeezenet1_0", "shufflenet_v2_x0_5", "mnasnet0_5",
         "googlenet", "regnet_y_400mf"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict(name, tmp_path):
    torch.manual_seed(0)
    sd = MODELS[name]().state_dict()
    path = tmp_path / f"{name}.pt"
    torch.save(sd, path)
    inv, loaded, recs = check_file(path)
    assert inv.format == "torch-zip"
    assert [t.path for t in inv.tensors if t.path in recs] == [(k,) for k in loaded]  # file order
    assert inv.metadata[""] == plain_metadata(loaded._metadata)
    assert set(inv.metadata) == {""}
    path.unlink()


@pytest.mark.parametrize("name", SMALL[:4])
def test_state_dict_legacy_format(name, tmp_path):
    sd = MODELS[name]().state_dict()
    path = tmp_path / f"{name}.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    inv, loaded, _ = check_file(path)
    assert inv.format == "torch-legacy"
    assert inv.metadata[""] == plain_metadata(loaded._metadata)


@pytest.mark.parametrize("name", SMALL)
def test_full_model_pickle(name, tmp_path):
    model = MODELS[name]()
    path = tmp_path / f"{name}.pt"
    torch.save(model, path)
    # torch refuses whole-module pickles under weights_only; this file is the test's own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(path, weights_only=False)
    inv = ckptlint.inspect(path)
    recs = assert_inventory_matches(inv, walk(loaded))
    params = {
        ".".join(p[i] for i in range(1, len(p), 2)): r
        for p, r in recs.items() if r.is_parameter
    }
    for p, r in recs.items():
        if r.is_parameter:
            assert len(p) % 2 == 0 and p[-2] == "_parameters" and all(x == "_modules" for x in p[:-2:2]), p
    named = dict(loaded.named_parameters(remove_duplicate=False))
    assert set(params) == set(named)
    for k, t in named.items():
        assert params[k].shape == tuple(t.shape)
        assert params[k].dtype == str(t.dtype).removeprefix("torch.")
        assert params[k].requires_grad == t.requires_grad


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("name", ["efficientnet_b0", "swin_t"])
def test_full_model_pickle_formats(name, protocol, fmt, tmp_path):
    # legacy full-model files add ('module', cls, source_file, source) persistent ids
    path = tmp_path / f"{name}.pt"
    torch.save(MODELS[name](), path, pickle_protocol=protocol, _use_new_zipfile_serialization=(fmt == "zip"))
    inv, loaded, recs = check_file(path)  # trusted load: torch refuses whole-module pickles
    assert isinstance(loaded, torch.nn.Module)
    assert inv.facts.pickle_protocol == protocol
    assert sum(r.is_parameter for r in recs.values()) == len(list(loaded.parameters()))


def _script_archive(tmp_path, name, how):
    model = MODELS[name]().eval()
    path = tmp_path / f"{name}-{how}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "script":
            sm = torch.jit.script(model)
        else:
            sm = torch.jit.trace(model, torch.randn(1, 3, 64, 64), check_trace=False)
        torch.jit.save(sm, str(path))
        loaded = torch.jit.load(str(path))
    return path, loaded


def assert_torchscript_matches(path, loaded):
    inv = ckptlint.inspect(path)
    assert inv.format == "torchscript"
    expected = {tuple(k.split(".")): v for k, v in loaded.state_dict().items()}
    assert_inventory_matches(inv, expected, check_parameter=False, check_requires_grad=False,
                             ignore_roots=("__constants__",))
    return inv


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "squeezenet1_0"])
def test_torchscript(name, how, tmp_path):
    path, loaded = _script_archive(tmp_path, name, how)
    assert_torchscript_matches(path, loaded)


class Custom(torch.nn.Module):
    """Tied weights, a non-persistent and a transposed buffer, containers of modules and parameters."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("scratch", torch.arange(3.0), persistent=False)
        self.register_buffer("half_t", torch.ones(2, 3, dtype=torch.float16).t())
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.plist = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(2)), torch.nn.Parameter(torch.randn(3))])
        self.pdict = torch.nn.ParameterDict({"alpha": torch.nn.Parameter(torch.randn(1))})

    def forward(self, x):
        x = self.emb(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x) + torch.tensor([1.0, 2.0, 3.0]).sum() + self.scratch.sum()


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_custom_module(how, tmp_path):
    path = tmp_path / f"custom-{how}.pt"
    model = Custom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.tensor([[1, 2]]))
        torch.jit.save(sm, str(path))
        loaded = torch.jit.load(str(path))
        _, consts = loaded.code_with_constants
    inv = assert_torchscript_matches(path, loaded)
    recs = {t.path: t for t in inv.tensors}
    assert recs[("emb", "weight")].storage_key == recs[("head", "weight")].storage_key
    # tensor constants of the (top-level) code: constants.pkl entry i is CONSTANTS.c<i>
    expected = {("__constants__", int(k[1:])): v for k, v in consts.const_mapping.items()
                if isinstance(v, torch.Tensor)}
    got = {p: r for p, r in recs.items() if p[0] == "__constants__"}
    assert set(got) == set(expected)
    for p, t in expected.items():
        assert (got[p].dtype, got[p].shape, got[p].stride) == (
            str(t.dtype).removeprefix("torch."), tuple(t.shape), tuple(t.stride()))
        assert got[p].storage_key.startswith("constants/")
