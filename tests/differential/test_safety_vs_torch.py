"""Safety verdicts against torch itself: ``torch.load(weights_only=True)`` and
``torch.serialization.get_unsafe_globals_in_checkpoint`` are the oracle.

Every file of the corpus is generated here, at test time. For each one:

* ckptlint's ``verdict.loads`` equals whether ``torch.load(path, weights_only=True)``
  succeeds (only ``weights_only=True`` is ever run, malicious files included);
* ckptlint's non-allowed GLOBALs in the streams torch reads equal
  ``get_unsafe_globals_in_checkpoint(path)`` wherever torch answers;
* safe files have zero findings, malicious ones never run (their marker file
  never appears), data-only refusals are fixed by running ckptlint's advice line.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torchvision import models as M

from ckptlint.checker import check_file

# --------------------------------------------------------------------------- corpus builders

TV_SAFE: dict[str, Callable[[], torch.nn.Module]] = {
    "resnet18": lambda: M.resnet18(),
    "mobilenet_v2": lambda: M.mobilenet_v2(),
    "mobilenet_v3_small": lambda: M.mobilenet_v3_small(),
    "squeezenet1_1": lambda: M.squeezenet1_1(),
    "shufflenet_v2_x0_5": lambda: M.shufflenet_v2_x0_5(),
    "mnasnet0_5": lambda: M.mnasnet0_5(),
    "efficientnet_b0": lambda: M.efficientnet_b0(),
    "regnet_x_400mf": lambda: M.regnet_x_400mf(),
    "densenet121": lambda: M.densenet121(),
    "googlenet": lambda: M.googlenet(aux_logits=False, init_weights=True),
    "convnext_tiny": lambda: M.convnext_tiny(),
    "alexnet": lambda: M.alexnet(num_classes=10),
    "swin_t": lambda: M.swin_t(),
    "raft_small": lambda: M.optical_flow.raft_small(),
    "lraspp_mobilenet_v3_large":
        lambda: M.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
    "ssdlite320_mobilenet_v3_large":
        lambda: M.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None),
}

CUSTOM_MODULE_SRC = textwrap.dedent("""
    import torch


    class TinyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)
            self.head = torch.nn.Linear(4, 2)
            self.register_buffer("scale", torch.ones(2))

        def forward(self, x):
            return self.head(self.bn(self.conv(x)).mean((2, 3))) * self.scale
""")


class Payload:
    """``os.system("touch <marker>")`` on unpickling; never unpickled here except by weights_only=True."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def _train_ckpt(opt_name: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3))
    opt = {"adam": lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-4),
           "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
           "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, amsgrad=True)}[opt_name](model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loss = model(torch.randn(4, 8)).square().mean()
    loss.backward()
    opt.step()
    sched.step()
    return {"epoch": 1, "global_step": 12, "best_loss": float(loss), "lrs": [0.1, 0.05],
            "history": [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": float(loss)}],
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "flags": (True, None, "tag"), "rng": torch.get_rng_state()}


def _small_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).state_dict()


def _save(obj: Any, path: Path, **kw: Any) -> Path:
    torch.save(obj, path, **kw)
    return path


def _write(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


def _custom_full_model(d: Path) -> Path:
    pkg = d / "custom_pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "ckl_custom_tinynet.py").write_text(CUSTOM_MODULE_SRC)
    if str(pkg) not in sys.path:
        sys.path.insert(0, str(pkg))
    import ckl_custom_tinynet  # type: ignore[import-not-found]

    return _save(ckl_custom_tinynet.TinyNet(), d / "custom_full.pt")


def _torchscript(d: Path, name: str) -> Path:
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    sm = torch.jit.script(m) if name == "script" else torch.jit.trace(m, torch.randn(1, 4))
    path = d / f"ts_{name}.pt"
    sm.save(str(path))
    return path


def _safetensors(d: Path, name: str) -> Path:
    from safetensors.torch import save_file

    path = d / name
    torch.manual_seed(0)
    save_file({"w": torch.randn(3, 4), "b": torch.zeros(4)}, str(path))
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    **{f"tv_sd_{n}": (lambda d, n=n: _save(TV_SAFE[n]().state_dict(), d / f"{n}.pth")) for n in TV_SAFE},
    # nested training checkpoints
    **{f"train_{o}": (lambda d, o=o: _save(_train_ckpt(o), d / f"train_{o}.ckpt")) for o in ("adam", "sgd", "adamw")},
    "train_adam_legacy": lambda d: _save(_train_ckpt("adam"), d / "train_legacy.pt",
                                         _use_new_zipfile_serialization=False),
    # data globals weights_only refuses
    "np_float64": lambda d: _save({"w": torch.ones(2), "best": np.float64(0.25)}, d / "np_f64.pt"),
    "np_int64": lambda d: _save({"w": torch.ones(2), "step": np.int64(7)}, d / "np_i64.pt"),
    "np_zeros": lambda d: _save({"w": torch.ones(2), "mask": np.zeros((2, 3), dtype=np.float32)}, d / "np_arr.pt"),
    "np_mixed": lambda d: _save({"a": np.zeros(4), "b": np.float64(1.5), "c": np.int64(3),
                                 "d": np.arange(3, dtype=np.int32)}, d / "np_mixed.pt"),
    "argparse_ns": lambda d: _save({"model": _small_sd(), "args": argparse.Namespace(lr=0.1, depth=3, name="x")},
                                   d / "args.pt"),
    "argparse_np": lambda d: _save({"args": argparse.Namespace(lr=0.1), "best": np.float64(2.0)}, d / "args_np.pt"),
    "np_legacy": lambda d: _save({"w": torch.ones(2), "best": np.float64(0.25)}, d / "np_legacy.pt",
                                 _use_new_zipfile_serialization=False),
    # full-model pickles
    "full_resnet18": lambda d: _save(M.resnet18(), d / "full_resnet18.pt"),
    "full_mobilenet_v3_small": lambda d: _save(M.mobilenet_v3_small(), d / "full_mnv3.pt"),
    "full_custom": _custom_full_model,
    "full_resnet18_legacy": lambda d: _save(M.resnet18(), d / "full_resnet18_legacy.pt",
                                            _use_new_zipfile_serialization=False),
    # TorchScript
    "torchscript_script": lambda d: _torchscript(d, "script"),
    "torchscript_trace": lambda d: _torchscript(d, "trace"),
    # legacy (non-zip) format
    "legacy_sd": lambda d: _save(_small_sd(), d / "legacy_sd.pt", _use_new_zipfile_serialization=False),
    "legacy_tv_resnet18": lambda d: _save(M.resnet18().state_dict(), d / "legacy_r18.pth",
                                          _use_new_zipfile_serialization=False),
    # pickle protocols
    **{f"proto{p}": (lambda d, p=p: _save(_small_sd(), d / f"proto{p}.pt", pickle_protocol=p)) for p in (2, 3, 4, 5)},
    "proto4_legacy": lambda d: _save(_small_sd(), d / "proto4_legacy.pt", pickle_protocol=4,
                                     _use_new_zipfile_serialization=False),
    # raw pickles
    "raw_plain_dict": lambda d: _write(pickle.dumps({"a": 1, "b": [1.0, 2.0]}, protocol=2), d / "raw.pkl"),
    "raw_tensor_dict": lambda d: _write(pickle.dumps(_small_sd(), protocol=2), d / "raw_tensors.bin"),
    "raw_proto5": lambda d: _write(pickle.dumps({"a": (1, 2)}, protocol=5), d / "raw5.ckpt"),
    # safetensors: the path's suffix decides what torch.load does
    "safetensors_named": lambda d: _safetensors(d, "weights.safetensors"),
    "safetensors_as_bin": lambda d: _safetensors(d, "weights.bin"),
    # malicious: payload marker must never appear
    "evil_zip": lambda d: _save({"w": torch.ones(2), "evil": Payload(d / "MARKER_evil_zip")}, d / "evil.pt"),
    "evil_top": lambda d: _save(Payload(d / "MARKER_evil_top"), d / "evil_top.pt"),
    "evil_legacy": lambda d: _save({"w": torch.ones(2), "evil": Payload(d / "MARKER_evil_legacy")},
                                   d / "evil_legacy.pt", _use_new_zipfile_serialization=False),
    "evil_raw": lambda d: _write(pickle.dumps({"evil": Payload(d / "MARKER_evil_raw")}, protocol=2),
                                 d / "evil_raw.pkl"),
    "evil_proto0": lambda d: _write(pickle.dumps(Payload(d / "MARKER_evil_proto0"), protocol=0),
                                    d / "evil0.bin"),
}

NUMPY_LIKE = ["np_float64", "np_int64", "np_zeros", "np_mixed", "argparse_ns", "argparse_np", "np_legacy"]
FULL_MODELS = ["full_resnet18", "full_mobilenet_v3_small", "full_custom", "full_resnet18_legacy"]
EVIL = [n for n in BUILDERS if n.startswith("evil_")]


@pytest.fixture(scope="module")
def corpus_dir(module_tmp: Path) -> Path:
    return module_tmp


_BUILT: dict[str, Path] = {}


@pytest.fixture
def build(corpus_dir: Path) -> Callable[[str], Path]:
    def get(name: str) -> Path:
        if name not in _BUILT:
            d = corpus_dir / name
            d.mkdir(exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _BUILT[name] = BUILDERS[name](d)
        return _BUILT[name]

    return get


# --------------------------------------------------------------------------- oracle

def torch_loads(path: Path) -> tuple[bool, str]:
    """Whether torch.load(weights_only=True) succeeds, and why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal is the oracle's answer
        return False, f"{type(e).__name__}: {str(e)[:300]}"
    return True, ""


def torch_unsafe_globals(path: Path) -> set[str] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - torch supports only protocol-2 zip, non-TorchScript files
        return None


def ckptlint_unsafe_globals(report: Any) -> set[str]:
    inv = report.inventory
    loaded = set(inv.facts.loaded_streams)
    cats = report.verdict.categories
    return {g.qualname for g in inv.globals
            if g.stream in loaded and g.opcode == "GLOBAL" and cats.get(g.qualname) != "allowed"}


def _markers(d: Path) -> list[Path]:
    return sorted(d.rglob("MARKER_*"))


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_verdict_and_globals_match_torch(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    report = check_file(path)
    assert report.error is None, report.error
    loads, why = torch_loads(path)
    assert not _markers(path.parent), "a payload ran"
    assert report.verdict.loads == loads, (
        f"ckptlint predicts loads={report.verdict.loads} ({report.verdict.blocking[:2]}), "
        f"torch: {why or 'loads'}")
    theirs = torch_unsafe_globals(path)
    if report.format == "torch-zip" and report.inventory.facts.pickle_protocol == 2:
        assert theirs is not None, "torch should read the globals of a protocol-2 torch zip"
    if theirs is not None:
        assert ckptlint_unsafe_globals(report) == theirs
    if loads:
        # What torch loads, ckptlint does not object to.
        errors = [f for f in report.findings if f.severity == "error"]
        assert errors == [], errors


@pytest.mark.parametrize("name", sorted(TV_SAFE))
def test_torchvision_state_dicts_have_no_findings(name: str, build: Callable[[str], Path]) -> None:
    report = check_file(build(f"tv_sd_{name}"))
    assert report.verdict.loads
    assert report.findings == []
    assert set(report.verdict.categories.values()) == {"allowed"}


@pytest.mark.parametrize("name", ["train_adam", "train_sgd", "train_adamw", "train_adam_legacy",
                                  "legacy_sd", "legacy_tv_resnet18", "proto2", "proto3"])
def test_safe_checkpoints_have_no_findings(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    assert torch_loads(path)[0]
    report = check_file(path)
    assert report.verdict.loads
    assert report.findings == []


@pytest.mark.parametrize("name", NUMPY_LIKE)
def test_data_globals_advice_makes_torch_load(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    report = check_file(path)
    v = report.verdict
    assert not v.loads
    assert not torch_loads(path)[0]
    assert {b.category for b in v.blocking if b.kind == "global"} <= {"data"}
    assert v.advice.startswith("import "), v.advice
    codes = {f.code for f in report.findings}
    assert "CK104" in codes and "CK105" in codes
    assert not codes & {"CK101", "CK102", "CK103"}
    script = f"import torch; {v.advice}; torch.load({str(path)!r}, weights_only=True)"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"advice did not make torch load the file:\n{v.advice}\n{r.stderr[-2000:]}"


@pytest.mark.parametrize("name", FULL_MODELS)
def test_full_model_pickles(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    report = check_file(path)
    assert not report.verdict.loads
    assert not torch_loads(path)[0]
    codes = [f.code for f in report.findings]
    assert "CK102" in codes
    assert "CK101" not in codes
    if name == "full_custom":
        assert report.verdict.categories["ckl_custom_tinynet.TinyNet"] == "model"


@pytest.mark.parametrize("name", ["torchscript_script", "torchscript_trace"])
def test_torchscript_refused_like_torch(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    report = check_file(path)
    assert report.format == "torchscript"
    assert report.verdict.loads is False
    assert torch_loads(path)[0] is False
    # torch.jit.save writes these streams itself (traced_inputs.pkl for traced modules): none is smuggled.
    assert [f for f in report.findings if f.code == "CK106"] == []


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_pickle_protocols(proto: int, build: Callable[[str], Path]) -> None:
    path = build(f"proto{proto}")
    report = check_file(path)
    loads, why = torch_loads(path)
    assert report.verdict.loads == loads, why
    assert report.inventory.facts.pickle_protocol == proto
    if not loads:
        assert report.verdict.blocking[0].kind == "opcode", report.verdict.blocking


def test_safetensors_path_suffix_decides(build: Callable[[str], Path]) -> None:
    named, as_bin = build("safetensors_named"), build("safetensors_as_bin")
    assert named.read_bytes() == as_bin.read_bytes()
    r_named, r_bin = check_file(named), check_file(as_bin)
    assert r_named.verdict.loads == torch_loads(named)[0]
    assert r_bin.verdict.loads == torch_loads(as_bin)[0]
    assert r_named.verdict.loads != r_bin.verdict.loads


@pytest.mark.parametrize("name", EVIL)
def test_malicious_never_runs_and_is_flagged(name: str, build: Callable[[str], Path]) -> None:
    path = build(name)
    report = check_file(path)
    assert not _markers(path.parent)
    assert not report.verdict.loads
    loads, _ = torch_loads(path)
    assert not loads
    assert not _markers(path.parent), "torch.load(weights_only=True) ran the payload"
    ck101 = [f for f in report.findings if f.code == "CK101"]
    assert ck101, report.findings
    assert any("system" in f.message for f in ck101)
    assert report.verdict.categories.get("posix.system", report.verdict.categories.get("os.system")) == "dangerous"
    if name in ("evil_zip", "evil_legacy"):
        assert any(f.key == "evil" for f in ck101), [(f.key, f.message) for f in ck101]
