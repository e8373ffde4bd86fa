"""Checkpoints made by training libraries (Lightning, accelerate, FSDP1/FSDP2, torch.ao, fp8) against torch.

The checkpoints are made here with the real libraries (tiny models, CPU, one process; FSDP with gloo at
world size 1). torch's ``load_state_dict`` (or the library's own loader) is the oracle: missing /
unexpected / shape / copy-error sets and strict / non-strict verdicts must equal ckptlint's, and every
suggested snippet is run unchanged, each tensor compared with what it must load (or named as left at
its initial value).
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import ckptlint
from ckptlint.compat.analyze import CompatAnalysis, analyze
from ckptlint.errors import UnwrapError
from ckptlint.targets.resolve import live_signature

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import training_models as tm  # noqa: E402 - after the path set-up
from _compat_oracle import agree, torch_says  # noqa: E402 - the one load_state_dict oracle


def ckptlint_says(path: Path, spec: str) -> CompatAnalysis:
    sig, model = live_signature(spec, {})
    return analyze(ckptlint.inspect(str(path)), sig, model=model)


def run_snippet(rep: CompatAnalysis, expected: dict[str, torch.Tensor]) -> nn.Module:
    """Run the fix's snippet unchanged; every key it claims holds the expected value, the rest are named."""
    assert rep.fix is not None
    ns: dict[str, Any] = {"__name__": "snippet"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(rep.fix.snippet, "<snippet>", "exec"), ns)  # noqa: S102 - ckptlint's own output
    model = ns["model"]
    got = model.state_dict()
    named = set(rep.fix.random_init)
    for key, value in got.items():
        if key in named:
            continue
        if key.endswith("num_batches_tracked") and key not in expected:
            assert int(value) == 0, key  # BatchNorm's own back-fill for a checkpoint without _metadata
            continue
        assert key in expected, f"{key} is neither loaded nor named as left at its initial value"
        assert torch.equal(value, expected[key].to(value.dtype)), key
    return model


def _load(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


# -- Lightning -------------------------------------------------------------------------------------


def _lightning_checkpoint(path: Path) -> Any:
    """Fit a tiny LightningModule for one epoch and save its checkpoint; returns the module's class."""
    import lightning as L

    class Task(L.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = tm.Net()

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            return self.model(batch[0]).square().mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 8)), batch_size=4)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(path.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Task(), data)
    trainer.save_checkpoint(str(path))
    return Task


def test_lightning_fit_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "epoch=0.ckpt"
    task = _lightning_checkpoint(path)
    ckpt = _load(path)
    assert {"state_dict", "hyper_parameters", "optimizer_states", "loops"} <= set(ckpt)
    rep = ckptlint_says(path, "training_models:Net")
    assert rep.state_dict.path == ("state_dict",)
    agree(rep, torch_says(tm.Net, ckpt["state_dict"]))
    assert rep.fix is not None and rep.fix.strict and not rep.fix.drop and not rep.fix.random_init
    expected = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model = run_snippet(rep, expected)
    # Lightning's own loader (load_from_checkpoint on the LightningModule) puts the same values in
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = task.load_from_checkpoint(str(path), map_location="cpu")
    assert restored.hparams.lr == 0.1
    lightning_sd = restored.model.state_dict()
    assert set(lightning_sd) == set(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in lightning_sd.items())


# -- torch.ao quantization -------------------------------------------------------------------------


QUANTIZED = {
    "dynamic": (tm.dynamic_quantized, "training_models:dynamic_quantized", "training_models:Net", tm.Net),
    "static": (tm.static_quantized, "training_models:static_quantized", "training_models:StaticNet", tm.StaticNet),
}


@pytest.mark.parametrize("kind", sorted(QUANTIZED))
def test_quantized_into_quantized_target(kind: str, tmp_path: Path) -> None:
    make, spec, _, _ = QUANTIZED[kind]
    path = tmp_path / "q.pt"
    torch.save(make().state_dict(), path)
    rep = ckptlint_says(path, spec)
    t = torch_says(make, _load(path))
    assert t.strict_ok  # torch loads it: no CK210 (the target's own load code runs on stand-ins)
    agree(rep, t)
    assert rep.fix is None


@pytest.mark.parametrize("kind", sorted(QUANTIZED))
def test_quantized_into_float_target_loads_dequantized(kind: str, tmp_path: Path) -> None:
    make, _, float_spec, fresh = QUANTIZED[kind]
    quantized = make()
    path = tmp_path / "q.pt"
    torch.save(quantized.state_dict(), path)
    rep = ckptlint_says(path, float_spec)
    agree(rep, torch_says(fresh, _load(path)))
    assert rep.fix is not None
    packed = [k for k in rep.fix.drop if k.endswith("_packed_params._packed_params")]
    assert packed == ["fc1._packed_params._packed_params", "fc2._packed_params._packed_params"]
    assert any("torch.ao packed (int8 weight, bias) pairs (fc1, fc2)" in d for d in rep.fix.diagnosis)
    assert rep.fix.random_init == [] and rep.fix.strict
    # the quantized modules' own weight()/bias(): what the int8 checkpoint holds, as float
    expected = {f"{m}.{what}": (getattr(quantized, m).weight().dequantize() if what == "weight"
                                else getattr(quantized, m).bias())
                for m in ("fc1", "fc2") for what in ("weight", "bias")}
    run_snippet(rep, expected)


# -- fp8 with scales -------------------------------------------------------------------------------


def _fp8(block: bool) -> tuple[OrderedDict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    real: dict[str, torch.Tensor] = {}
    for k, v in tm.Net().state_dict().items():
        if k.endswith("weight"):
            if block:  # one scale per 4 x 4 block (DeepSeek-style weight_scale_inv, multiplied)
                rows, cols = -(-v.shape[0] // 4), -(-v.shape[1] // 4)
                s = torch.rand(rows, cols) / 100 + 1e-3
                codes = (v / s.repeat_interleave(4, 0)[: v.shape[0]].repeat_interleave(4, 1)[:, : v.shape[1]])
                sd[k] = codes.to(torch.float8_e4m3fn)
                sd[k + "_scale_inv"] = s
                full = s.repeat_interleave(4, 0)[: v.shape[0]].repeat_interleave(4, 1)[:, : v.shape[1]]
                real[k] = sd[k].to(torch.float32) * full
            else:
                s = v.abs().amax() / 448
                sd[k] = (v / s).to(torch.float8_e4m3fn)
                sd[k + "_scale"] = s.reshape(())
                real[k] = sd[k].to(torch.float32) * s
        else:
            sd[k] = v
            real[k] = v
    return sd, real


@pytest.mark.parametrize("block", [False, True], ids=["per-tensor", "block"])
def test_fp8_scales_are_applied_not_dropped(block: bool, tmp_path: Path, cli: Any) -> None:
    sd, real = _fp8(block)
    path = tmp_path / "fp8.pt"
    torch.save(sd, path)
    rep = ckptlint_says(path, "training_models:Net")
    agree(rep, torch_says(tm.Net, _load(path)))
    assert rep.fix is not None and not rep.fix.random_init
    assert any("fp8" in d and "dequantiz" in d for d in rep.fix.diagnosis)
    # the one-line fix says so too, not just "drop the scales"
    out = cli("check", str(path), "--model", "training_models:Net").stdout
    assert "CK202: dequantize the fp8 weights with their scales" in out
    assert "CK204: do not cast the fp8 weights" in out and "CK204: cast deliberately" not in out
    run_snippet(rep, real)  # the raw codes (what a plain drop loads) differ from these values
    assert not torch.equal(sd["fc1.weight"].to(torch.float32), real["fc1.weight"])


# -- FSDP1 and FSDP2 in one process (gloo, world size 1) -------------------------------------------


@pytest.fixture(scope="module")
def process_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import torch.distributed as dist

    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case", ["flat", "use_orig_params", "rank0_shard"])
def test_fsdp1_flat_parameter(case: str, process_group: None, tmp_path: Path) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    torch.manual_seed(0)
    wrapped = FSDP(tm.Net(), device_id=torch.device("cpu"), use_orig_params=case == "use_orig_params")
    flat = {k: v.detach().clone() for k, v in wrapped._fsdp_wrapped_module.named_parameters()
            if k.endswith("_flat_param")} or {"_fsdp_wrapped_module._flat_param": wrapped._flat_param.detach().clone()}
    flat = {("_fsdp_wrapped_module._flat_param" if k == "_flat_param" else k): v for k, v in flat.items()}
    assert list(flat) == ["_fsdp_wrapped_module._flat_param"]
    full = {k: v.detach().clone() for k, v in wrapped.state_dict().items()}  # FSDP's own FULL_STATE_DICT
    assert set(full) == set(tm.Net().state_dict())
    if case == "rank0_shard":  # what rank 0 of two holds under FULL_SHARD: the first half
        flat = {k: v[: v.numel() // 2].clone() for k, v in flat.items()}
    path = tmp_path / "flat.pt"
    torch.save(flat, path)
    rep = ckptlint_says(path, "training_models:Net")
    agree(rep, torch_says(tm.Net, _load(path)))
    assert rep.fix is not None
    assert rep.fix.drop == ["_fsdp_wrapped_module._flat_param"]
    numel = flat["_fsdp_wrapped_module._flat_param"].numel()
    if numel == sum(v.numel() for v in full.values()):  # no padding: sliced back into the parameters
        assert rep.fix.random_init == [] and rep.fix.strict
        assert any("unsharded FSDP1 FlatParameter" in d for d in rep.fix.diagnosis)
    else:  # padded or sharded: named, not guessed
        assert case == "rank0_shard"
        assert set(rep.fix.random_init) == set(full)
        assert any(f"FlatParameter ({numel} elements)" in d for d in rep.fix.diagnosis)
    run_snippet(rep, full)


def test_fsdp2_dtensor_state_dict_into_plain_module(process_group: None, tmp_path: Path) -> None:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = tm.Net()
    fully_shard(model)
    sd = model.state_dict()
    assert type(sd["fc1.weight"]).__name__ == "DTensor"
    path = tmp_path / "dtensor.pt"
    torch.save(sd, path)
    rep = ckptlint_says(path, "training_models:Net")
    t = torch_says(tm.Net, _load(path))
    assert not t.nonstrict_ok and t.copy_errors == set(sd)
    agree(rep, t)
    assert all("DTensor" in v for v in rep.result.non_tensor.values())


# -- accelerate ------------------------------------------------------------------------------------


def test_accelerate_optimizer_bin_is_not_a_model(tmp_path: Path) -> None:
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    net = tm.Net()
    opt = torch.optim.Adam(net.parameters())
    net, opt = acc.prepare(net, opt)
    net(torch.randn(2, 8)).sum().backward()
    opt.step()
    acc.save_state(str(tmp_path / "state"))
    path = tmp_path / "state" / "optimizer.bin"
    # torch: every model key missing, the optimizer's keys unexpected; ckptlint says what the file is
    t = torch_says(tm.Net, _load(path))
    assert t.missing == set(tm.Net().state_dict())
    with pytest.raises(UnwrapError, match="optimizer state_dict"):
        ckptlint_says(path, "training_models:Net")


# -- folders and archives as inputs ------------------------------------------------------------------


def _keys_and_shapes(rep_sd: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in rep_sd.entries.items()}


def _torch_keys_and_shapes(sd: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}


def _dcp_checkpoint(folder: Path) -> dict[str, Any]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    torch.manual_seed(0)
    dcp.save({"model": tm.Net().state_dict(), "step": 3}, checkpoint_id=str(folder), no_dist=True)
    converted = folder.parent / "converted.pt"
    dcp_to_torch_save(str(folder), str(converted))  # DCP's own loader is the oracle
    return _load(converted)


@pytest.mark.parametrize("spec", ["training_models:Net", "training_models:Wrapped", "training_models:WithNorm"])
def test_dcp_folder(spec: str, tmp_path: Path) -> None:
    folder = tmp_path / "dcp"
    oracle = _dcp_checkpoint(folder)
    inv = ckptlint.inspect(str(folder))
    assert inv.format == "dcp" and inv.structure["step"] == {"__object__": "torch.distributed.checkpoint.metadata"
                                                                         ".BytesStorageMetadata"}
    rep = ckptlint_says(folder, spec)
    assert rep.state_dict.path == ("model",)
    assert _keys_and_shapes(rep.state_dict) == _torch_keys_and_shapes(oracle["model"])
    fresh = {"training_models:Net": tm.Net, "training_models:Wrapped": tm.Wrapped,
             "training_models:WithNorm": tm.WithNorm}[spec]
    agree(rep, torch_says(fresh, oracle["model"]))
    if rep.fix is not None:
        assert "dcp_to_torch_save" in rep.fix.snippet and "torch.load(" in rep.fix.snippet
        assert "trust" not in rep.fix.snippet  # checked: the .metadata names only plain data classes
        run_snippet(rep, {"net." + k: v for k, v in oracle["model"].items()} if spec.endswith("Wrapped")
                    else dict(oracle["model"]))


class _Shell:
    """Pickles as ``os.system(cmd)``."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (self.cmd,))


def test_dcp_folder_whose_metadata_runs_code_gets_no_loading_code(tmp_path: Path) -> None:
    """DCP reads .metadata with pickle.load: when it names os.system, the snippet loads nothing."""
    import pickle

    from torch.distributed.checkpoint import FileSystemReader

    from conftest import python_process

    folder = tmp_path / "dcp"
    _dcp_checkpoint(folder)
    metadata = FileSystemReader(str(folder)).read_metadata()  # our own benign file, read by DCP itself
    marker = tmp_path / "ran"
    metadata.planner_data = {"x": _Shell(f"touch {marker}")}
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    rep = ckptlint_says(folder, "training_models:Wrapped")
    assert rep.fix is not None
    code = [line for line in rep.fix.snippet.splitlines() if line and not line.startswith("#")]
    assert len(code) == 1 and code[0].startswith("raise SystemExit(") and "posix.system" in code[0], code
    script = tmp_path / "snippet.py"
    script.write_text(rep.fix.snippet)
    proc = python_process(str(script), cwd=tmp_path)
    assert proc.returncode == 1 and "not loading" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()


def test_accelerate_save_state_folder(tmp_path: Path) -> None:
    from accelerate import Accelerator

    torch.manual_seed(0)
    acc = Accelerator(cpu=True)
    saved = tm.Net()
    saved, _ = acc.prepare(saved, torch.optim.SGD(saved.parameters(), lr=0.1))
    acc.save_state(str(tmp_path / "state"))
    # accelerate's own loader: load_state into a fresh prepared model
    acc2 = Accelerator(cpu=True)
    fresh = tm.Net()
    fresh, _ = acc2.prepare(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))
    acc2.load_state(str(tmp_path / "state"))
    expected = {"net." + k: v for k, v in fresh.state_dict().items()}
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in fresh.state_dict().items())
    inv = ckptlint.inspect(str(tmp_path / "state"))
    assert inv.format == "safetensors" and any("optimizer.bin" in n for n in inv.notes)
    rep = ckptlint_says(tmp_path / "state", "training_models:Wrapped")
    from safetensors.torch import load_file

    agree(rep, torch_says(tm.Wrapped, load_file(str(tmp_path / "state" / "model.safetensors"))))
    assert rep.fix is not None and "torch.load(" not in rep.fix.snippet
    run_snippet(rep, expected)


def test_sharded_index_snippet_uses_safetensors(tmp_path: Path) -> None:
    from accelerate import Accelerator

    torch.manual_seed(0)
    net = tm.Net()
    Accelerator(cpu=True).save_model(net, str(tmp_path / "out"), max_shard_size=600)
    index = tmp_path / "out" / "model.safetensors.index.json"
    assert index.is_file() and len(list((tmp_path / "out").glob("model-*.safetensors"))) > 1
    for path in (index, tmp_path / "out"):  # the index itself, and its folder
        rep = ckptlint_says(path, "training_models:Wrapped")
        agree(rep, torch_says(tm.Wrapped, {k: v.detach() for k, v in net.state_dict().items()}))
        assert rep.fix is not None and "torch.load(" not in rep.fix.snippet
        run_snippet(rep, {"net." + k: v for k, v in net.state_dict().items()})


@pytest.mark.parametrize("spec", ["training_models:Net", "training_models:Wrapped", "training_models:WithNorm"])
@pytest.mark.parametrize("made", ["Net", "WithNorm"])
def test_torchscript_archive(made: str, spec: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(getattr(tm, made)()), str(path))
    oracle = torch.jit.load(str(path), map_location="cpu").state_dict()
    rep = ckptlint_says(path, spec)
    assert _keys_and_shapes(rep.state_dict) == _torch_keys_and_shapes(oracle)
    fresh = getattr(tm, spec.split(":")[1])
    agree(rep, torch_says(fresh, oracle))
    if rep.fix is not None:
        assert "torch.jit.load(" in rep.fix.snippet
        run_snippet(rep, {("net." if spec.endswith("Wrapped") else "") + k: v for k, v in oracle.items()})


@pytest.mark.parametrize("spec", ["training_models:Net", "training_models:Wrapped", "training_models:WithNorm"])
@pytest.mark.parametrize("made", ["Net", "WithNorm"])
def test_export_pt2_archive(made: str, spec: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "exported.pt2"
    module = getattr(tm, made)().eval()
    torch.export.save(torch.export.export(module, (torch.randn(2, 8),)), str(path))
    oracle = torch.export.load(str(path)).state_dict
    inv = ckptlint.inspect(str(path))
    assert inv.format == "torch-export"
    rep = ckptlint_says(path, spec)
    assert _keys_and_shapes(rep.state_dict) == _torch_keys_and_shapes(oracle)
    fresh = getattr(tm, spec.split(":")[1])
    agree(rep, torch_says(fresh, oracle))
    if rep.fix is not None:
        assert "torch.export.load(" in rep.fix.snippet
        run_snippet(rep, {("net." if spec.endswith("Wrapped") else "") + k: v for k, v in oracle.items()})


def _rewritten_pt2(src: Path, out: Path, payload: bytes) -> None:
    """``src`` with fc1.bias stored as a pickle (``use_pickle``), as torch.export saves tensor subclasses."""
    import json
    import zipfile

    with zipfile.ZipFile(src) as z, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as w:
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                config["config"]["fc1.bias"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif info.filename.endswith("data/weights/" + json.loads(
                    z.read(next(n for n in z.namelist() if n.endswith("model_weights_config.json"))))
                    ["config"]["fc1.bias"]["path_name"]):
                data = payload
            w.writestr(info.filename, data)


class _Marker:
    """Writes a file when unpickled: proof that reading never runs the payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_export_pt2_pickled_weights_are_read_statically(tmp_path: Path) -> None:
    import io

    torch.manual_seed(0)
    clean = tmp_path / "clean.pt2"
    torch.export.save(torch.export.export(tm.Net(), (torch.randn(2, 8),)), str(clean))
    buf = io.BytesIO()
    torch.save(nn.Parameter(torch.arange(16.0)), buf)
    pickled = tmp_path / "pickled.pt2"
    _rewritten_pt2(clean, pickled, buf.getvalue())
    oracle = torch.export.load(str(pickled)).state_dict  # torch.export.load unpickles fc1.bias
    assert torch.equal(oracle["fc1.bias"], torch.arange(16.0))
    inv = ckptlint.inspect(str(pickled))
    rep_sd = ckptlint_says(pickled, "training_models:Net").state_dict
    assert _keys_and_shapes(rep_sd) == _torch_keys_and_shapes(oracle)
    assert "torch._utils._rebuild_parameter" in {g.qualname for g in inv.globals}
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"x": _Marker(str(marker))}, buf)
    hostile = tmp_path / "hostile.pt2"
    _rewritten_pt2(clean, hostile, buf.getvalue())
    report = ckptlint.check(str(hostile))
    assert not marker.exists()
    assert any(f.code == "CK101" and "touch" in f.message for f in report.files[0].findings)
