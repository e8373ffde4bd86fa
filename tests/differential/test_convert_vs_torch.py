"""``ckptlint convert`` of real checkpoints against torch (issue #15): torchvision state_dicts (zip and legacy),
full-model pickles of torchvision and custom modules (alone, inside training dictionaries, wrapped in
``DataParallel``, with a submodule under two names, spectral_norm / weight_norm, a state_dict hook), training
dictionaries with optimizer state and ``argparse.Namespace``. Converted in one process where torch cannot be
imported, with the custom model's module importable there and a marker proving it is never imported; every
output tensor equals, bit for bit, what ``torch.load`` gives (a full model: its ``state_dict()``), the
``__metadata__`` names the source and its sha256, and ``load_state_dict(strict=True)`` into the real class
succeeds.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from _convert_oracle import Converted, assert_output_equals, convert_torchfree, state_dict_of, trusted_load
from safetensors.torch import load_file
from torch import nn
from torchvision import models as M

MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: M.resnet18(),
    "mobilenet_v3_small": lambda: M.mobilenet_v3_small(),
    "squeezenet1_0": lambda: M.squeezenet1_0(),
    "shufflenet_v2_x0_5": lambda: M.shufflenet_v2_x0_5(),
    "mnasnet0_5": lambda: M.mnasnet0_5(),
    "googlenet": lambda: M.googlenet(aux_logits=False, init_weights=True),
    "regnet_y_400mf": lambda: M.regnet_y_400mf(),
    "efficientnet_b0": lambda: M.efficientnet_b0(),
    "densenet121": lambda: M.densenet121(),
    "swin_t": lambda: M.swin_t(),
    "lraspp_mobilenet_v3_large":
        lambda: M.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
    "fasterrcnn_mobilenet_v3_large_320_fpn":
        lambda: M.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None),
}
LEGACY = ["resnet18", "squeezenet1_0", "mnasnet0_5"]
FULL = ["resnet18", "mobilenet_v3_small", "densenet121", "googlenet", "swin_t", "fasterrcnn_mobilenet_v3_large_320_fpn"]

CUSTOM_MODULE = "ckptlint_convert_custom_mod"
CUSTOM_SOURCE = '''
"""A custom model for the convert tests: importing it leaves a marker (convert must never import it)."""
import os
import pathlib

if os.environ.get("CKPT_CONVERT_MARKER"):
    pathlib.Path(os.environ["CKPT_CONVERT_MARKER"]).write_text("imported")

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 4)

    def __setstate__(self, state):
        if os.environ.get("CKPT_CONVERT_MARKER"):
            pathlib.Path(os.environ["CKPT_CONVERT_MARKER"]).write_text("setstate ran")
        super().__setstate__(state)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([Block() for _ in range(2)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 3), "b": nn.Linear(4, 2, bias=False)})
        self.seq = nn.Sequential(nn.Conv1d(4, 4, 1), nn.BatchNorm1d(4), nn.ReLU())
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.emb.weight  # tied: state_dict() has both keys
        self.register_buffer("positions", torch.arange(6, dtype=torch.int64))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)  # not in state_dict()
        self.register_parameter("unused", None)  # not in state_dict()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.config = {"hidden": 4, "name": "custom"}


class SharedParts(nn.Module):
    """One Linear under two names (state_dict() lists both), an absent submodule, parameter containers, a buffer
    viewing a parameter's storage."""

    def __init__(self):
        super().__init__()
        lin = nn.Linear(3, 3)
        self.a = lin
        self.b = lin
        self.register_module("nothing", None)
        self.plist = nn.ParameterList([nn.Parameter(torch.ones(2)), nn.Parameter(torch.zeros(3))])
        self.pdict = nn.ParameterDict({"x": nn.Parameter(torch.ones(1))})
        self.register_buffer("first_row", self.a.weight.data[0])
        self.seq = nn.Sequential(nn.Identity(), nn.Linear(3, 2))


def add_key(module, state_dict, prefix, local_metadata):
    state_dict[prefix + "extra"] = torch.ones(1)


class Hooked(nn.Module):
    """A state_dict hook adds a key: state_dict() is not the module tree's tensors."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.lin._register_state_dict_hook(add_key)
'''


@dataclass
class Case:
    """A source file, the convert arguments, and torch's answer."""

    src: Path
    expected: dict[str, torch.Tensor]
    fresh: Callable[[], nn.Module] | None = None
    args: list[str] = field(default_factory=list)
    left_out: tuple[str, ...] = ()
    state_dict_at: str | None = None
    """``__metadata__["ckptlint_state_dict"]``: where the state_dict sat, when not the top level."""


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def _spectral() -> nn.Module:
    torch.manual_seed(5)
    m = nn.Sequential(nn.utils.spectral_norm(nn.Linear(4, 3)), nn.ReLU())
    m(torch.randn(2, 4))  # one power iteration: u and v move
    return m


def _weight_norm() -> nn.Module:
    torch.manual_seed(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, but old audio checkpoints are full of it
        return nn.Sequential(nn.utils.weight_norm(nn.Conv1d(2, 4, 3)), nn.ReLU())


def _training_dict() -> dict[str, object]:
    """What a training script saves: model, optimizer state (Adam after steps), scheduler, args, counters."""
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 8)).sum().backward()
        opt.step()
        sched.step()
    return {"epoch": 3, "global_step": 200, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "args": argparse.Namespace(lr=1e-3, arch="net", tags=["a"]),
            "best_acc": 0.91}


def _cases(tmp: Path, custom: Callable[[], nn.Module], shared: Callable[[], nn.Module]
           ) -> Iterator[tuple[str, Case]]:
    for name, build in MODELS.items():
        torch.manual_seed(0)
        model = build()
        sd = model.state_dict()
        for fmt in ("zip", "legacy") if name in LEGACY else ("zip",):
            src = tmp / f"{name}.{fmt}.pt"
            torch.save(sd, src, _use_new_zipfile_serialization=(fmt == "zip"))
            yield f"state_dict-{fmt}-{name}", Case(src, state_dict_of(trusted_load(src)), build)
        if name in FULL:
            src = tmp / f"{name}.full.pt"
            torch.save(model, src)
            yield f"full-model-{name}", Case(src, state_dict_of(trusted_load(src)), build)
    for fmt in ("zip", "legacy"):
        src = tmp / f"custom.full.{fmt}.pt"
        torch.save(custom(), src, _use_new_zipfile_serialization=(fmt == "zip"))
        yield f"full-model-custom-{fmt}", Case(src, state_dict_of(trusted_load(src)), custom)
        src = tmp / f"training.{fmt}.pt"
        torch.save(_training_dict(), src, _use_new_zipfile_serialization=(fmt == "zip"))
        expected = trusted_load(src)["model"]
        left_out = ("epoch", "global_step", "optimizer", "scheduler", "args", "best_acc")
        yield f"training-{fmt}", Case(src, dict(expected), _net, left_out=left_out, state_dict_at="model")
        yield f"training-{fmt}-key", Case(src, dict(expected), _net, args=["--key", "model"], left_out=left_out,
                                          state_dict_at="model")
    src = tmp / "squeezenet.full.legacy.pt"
    torch.save(MODELS["squeezenet1_0"](), src, _use_new_zipfile_serialization=False)
    yield "full-model-legacy-squeezenet1_0", Case(src, state_dict_of(trusted_load(src)), MODELS["squeezenet1_0"])
    src = tmp / "module_in_dict.pt"
    torch.save({"epoch": 4, "model": MODELS["squeezenet1_0"](), "args": argparse.Namespace(lr=0.1)}, src)
    yield "full-model-in-training-dict", Case(src, state_dict_of(trusted_load(src)["model"]),
                                              MODELS["squeezenet1_0"], left_out=("epoch", "args"),
                                              state_dict_at="model")
    src = tmp / "data_parallel_in_dict.pt"
    torch.save({"net": nn.DataParallel(MODELS["shufflenet_v2_x0_5"]())}, src)
    yield "full-model-data-parallel-in-dict", Case(src, state_dict_of(trusted_load(src)["net"]),
                                                   lambda: nn.DataParallel(MODELS["shufflenet_v2_x0_5"]()),
                                                   state_dict_at="net")
    yield "full-model-key-into-module", Case(src, state_dict_of(trusted_load(src)["net"].module),
                                             MODELS["shufflenet_v2_x0_5"], args=["--key", "net/module"],
                                             state_dict_at="net/module")  # ckpt["net"].module
    src = tmp / "spectral_norm.full.pt"
    torch.save(_spectral(), src)  # torch's SpectralNormStateDictHook only writes _metadata: keys are unchanged
    yield "full-model-spectral-norm", Case(src, state_dict_of(trusted_load(src)), _spectral)
    src = tmp / "weight_norm.full.pt"
    torch.save(_weight_norm(), src)  # old-style weight_norm: weight_g/weight_v parameters, weight a plain attribute
    yield "full-model-weight-norm", Case(src, state_dict_of(trusted_load(src)), _weight_norm)
    src = tmp / "shared_parts.full.pt"
    torch.save(shared(), src)
    yield "full-model-shared-parts", Case(src, state_dict_of(trusted_load(src)), shared)
    src = tmp / "lightning_like.pt"
    sd = _net().state_dict()
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1, "optimizer_states": [],
                "hyper_parameters": {"lr": 0.1, "ns": argparse.Namespace(x=1)}, "callbacks": {}}, src)
    yield "training-lightning-like", Case(src, {f"model.{k}": v for k, v in sd.items()},
                                          left_out=("epoch", "hyper_parameters"), state_dict_at="state_dict")
    src = tmp / "mixed_values.pt"
    sd = _net().state_dict()
    torch.save({**sd, "note": "trained on x", "n_classes": 4, "hparams": argparse.Namespace(depth=2)}, src)
    yield "state_dict-with-non-tensor-values", Case(src, dict(sd), left_out=("note", "n_classes", "hparams"))


HOOKED: dict[str, torch.Tensor] = {}
"""torch's state_dict() of the pickled Hooked module (its hook ran, in the test's trusted load)."""


@pytest.fixture(scope="module")
def converted(module_tmp: Path) -> Iterator[tuple[dict[str, Case], dict[str, Converted],
                                                                          Path]]:
    """Every case built with torch here, then converted in one torch-less process (the custom model's module
    is on that process's path, with a marker that its import or ``__setstate__`` would write)."""
    tmp = module_tmp
    moddir = tmp / "mods"
    moddir.mkdir()
    (moddir / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_SOURCE)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(moddir))
        mod = importlib.import_module(CUSTOM_MODULE)

        def custom() -> nn.Module:
            torch.manual_seed(2)
            return mod.Custom()

        def shared() -> nn.Module:
            torch.manual_seed(2)
            return mod.SharedParts()

        cases = dict(_cases(tmp, custom, shared))
        torch.save(mod.Hooked(), tmp / "hooked.full.pt")
        HOOKED.update(trusted_load(tmp / "hooked.full.pt").state_dict())
        marker = tmp / "marker"
        jobs: list[list[str | Path]] = [["convert", c.src, tmp / "out" / f"{name}.safetensors", *c.args]
                                        for name, c in cases.items()]
        jobs.append(["convert", tmp / "hooked.full.pt", tmp / "out" / "hooked.safetensors"])
        # --force changes nothing about running code: the custom module is still never imported (marker below)
        jobs.append(["convert", tmp / "custom.full.zip.pt", tmp / "out" / "custom-forced.safetensors", "--force"])
        (tmp / "out").mkdir()
        results = convert_torchfree(jobs, tmp / "run", env={"CKPT_CONVERT_MARKER": str(marker)},
                                    pythonpath=[moddir])
        assert not marker.exists(), "the converting process imported the custom module or ran its code"
        yield cases, dict(zip([*cases, "hooked", "custom-forced"], results, strict=True)), tmp / "out"
        sys.modules.pop(CUSTOM_MODULE, None)


def _names() -> list[str]:
    names = [f"state_dict-zip-{n}" for n in MODELS] + [f"state_dict-legacy-{n}" for n in LEGACY]
    names += [f"full-model-{n}" for n in FULL] + ["full-model-custom-zip", "full-model-custom-legacy",
                                                  "full-model-shared-parts", "full-model-in-training-dict",
                                                  "full-model-data-parallel-in-dict", "full-model-spectral-norm",
                                                  "full-model-weight-norm", "full-model-key-into-module",
                                                  "full-model-legacy-squeezenet1_0"]
    names += ["training-zip", "training-legacy", "training-zip-key", "training-legacy-key", "training-lightning-like",
              "state_dict-with-non-tensor-values"]
    return names


def test_every_case_is_run(converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    assert sorted(converted[0]) == sorted(_names())


@pytest.mark.parametrize("name", _names())
def test_convert_equals_torch_load_bit_for_bit(name: str,
                                               converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    cases, results, out = converted
    case, r = cases[name], results[name]
    assert r.code == 0, (r.code, r.text[-3000:])
    assert "Traceback" not in r.text
    metadata = assert_output_equals(out / f"{name}.safetensors", case.expected)
    for word in case.left_out:  # non-tensor entries are left out and listed
        assert word in r.text, (word, r.text)
    assert metadata["ckptlint_source"] == case.src.name, metadata  # the source is recorded, with its sha256
    assert metadata["ckptlint_source_sha256"] == hashlib.sha256(case.src.read_bytes()).hexdigest(), metadata
    assert metadata["format"] == "pt"  # what transformers checks before loading
    assert metadata.get("ckptlint_state_dict") == case.state_dict_at, metadata


NOT_LOADABLE = ("training-lightning", "state_dict-with", "state_dict-zip-mnasnet", "state_dict-legacy-mnasnet")
"""No class to load into; or MNASNet, whose _load_from_state_dict needs the state_dict's ``_metadata`` version,
which no safetensors file carries (safetensors.torch.save_file's output fails the same way)."""


@pytest.mark.parametrize("name", [n for n in _names() if not n.startswith(NOT_LOADABLE)])
def test_strict_load_into_the_real_class(name: str,
                                         converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    cases, results, out = converted
    assert results[name].code == 0, results[name].text[-3000:]
    fresh = cases[name].fresh
    assert fresh is not None
    model = fresh()
    result = model.load_state_dict(load_file(str(out / f"{name}.safetensors")), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_state_dict_hooks_are_not_silently_skipped(converted: tuple[dict[str, Case], dict[str, Converted], Path]
                                                   ) -> None:
    """A pickled module with a state_dict hook: convert cannot run it, so either the output still equals torch's
    state_dict() or the conversion is refused naming the hook; never a file quietly missing the hook's keys."""
    _, results, out = converted
    r = results["hooked"]
    assert "Traceback" not in r.text
    assert "lin.extra" in HOOKED  # the hook ran in torch's state_dict()
    if r.code == 0:
        assert_output_equals(out / "hooked.safetensors", HOOKED)
    else:
        assert r.code == 2 and "add_key" in r.stderr, r.text
        assert not (out / "hooked.safetensors").exists()


def test_forced_conversion_of_a_custom_module_imports_nothing(
        converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    """--force on the custom full-model pickle: the same tensors; the fixture's marker shows no import happened."""
    cases, results, out = converted
    r = results["custom-forced"]
    assert r.code == 0, r.text
    assert_output_equals(out / "custom-forced.safetensors", cases["full-model-custom-zip"].expected)
