"""``ckptlint convert`` of the other formats ckptlint reads, against torch (issue #15): TorchScript archives,
torch.export archives, raw pickles of tensors, torch 0.1 tar files, zips whose members were re-compressed
(torch reads deflate), a torch.distributed.checkpoint folder, every pickle protocol torch.save writes,
safetensors itself (one file, a sharded set), ``--key`` into nested and EMA dictionaries, and a Lightning-style
``state_dict`` with ``--snapshot --apply-fix``. Converted where torch cannot be imported.
"""

from __future__ import annotations

import importlib
import json
import pickle
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from _convert_oracle import Converted, assert_output_equals, convert_torchfree, state_dict_of, trusted_load
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision import models as M

from conftest import TESTS, CliRunner

sys.path.insert(0, str(TESTS))
import tarcraft as tc


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


@dataclass
class Case:
    src: Path
    expected: dict[str, torch.Tensor]
    args: list[str] = field(default_factory=list)
    fresh: Callable[[], nn.Module] | None = None


class _ViewTar(tc.TorchTar):
    """A torch 0.1 tar whose tensor records are views: "w" 2-D (sizes 2x2, strides 1,2, offset 1), "b" every
    second element from offset 1."""

    def tensor_records(self) -> bytes:
        out = tc.p2(tc.pint(len(self.tensors)))
        for i, (_, values) in enumerate(self.tensors.items()):
            out += tc.p2(tc.pint(100 + i) + tc.pint(i) + tc.glob("torch", "FloatTensor") + b"\x87")
            if i == 0:  # ndim, 4 pad bytes, sizes, strides, storage offset
                out += struct.pack("<i", 2) + b"\0" * 4 + struct.pack("<qqqqq", 2, 2, 1, 2, 1)
            else:
                out += struct.pack("<i", 1) + b"\0" * 4 + struct.pack("<qqq", len(values) // 2, 2, 1)
        return out


def _deflated(src: Path, dest: Path) -> None:
    """The same archive with every member deflate-compressed (what re-zipping a checkpoint does)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def _cases(tmp: Path, snap: Path) -> Iterator[tuple[str, Case]]:
    torch.manual_seed(0)
    resnet = M.resnet18().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; its archives are everywhere
        src = tmp / "resnet18.torchscript.pt"
        torch.jit.save(torch.jit.script(resnet), src)
        yield "torchscript-resnet18", Case(src, state_dict_of(torch.jit.load(src)), fresh=M.resnet18)
        src = tmp / "net.traced.pt"
        torch.jit.save(torch.jit.trace(_net().eval(), torch.randn(2, 8)), src)
        yield "torchscript-traced", Case(src, state_dict_of(torch.jit.load(src)), fresh=_net)
    src = tmp / "net.pt2"
    torch.export.save(torch.export.export(_net().eval(), (torch.randn(2, 8),)), src)
    yield "torch-export", Case(src, dict(torch.export.load(src).state_dict), fresh=_net)

    w = torch.randn(6, 4)
    raw = {"w": w, "w.t": w.t(), "w.rows": w[2:], "b": torch.arange(5, dtype=torch.int16)}
    for proto in (0, 1, 2, 4, 5):
        src = tmp / f"raw.p{proto}.pkl"
        src.write_bytes(pickle.dumps(raw, protocol=proto))
        # the test's own file, just written: unpickling it runs nothing but torch's storage rebuild
        loaded = pickle.loads(src.read_bytes())  # noqa: S301
        # storages pickle as torch.storage._load_from_bytes (torch.load of nested bytes, weights_only=False):
        # refused as dangerous (test below), converted with --force, still without running anything
        yield f"raw-pickle-p{proto}", Case(src, dict(loaded), args=["--force"])

    sd = _net().state_dict()
    for proto in (1, 2, 3, 4, 5):
        src = tmp / f"sd.p{proto}.pt"
        torch.save(sd, src, pickle_protocol=proto)
        yield f"torch-save-protocol-{proto}", Case(src, dict(trusted_load(src)), fresh=_net)
    for proto in (1, 2, 4):
        src = tmp / f"sd.legacy.p{proto}.pt"
        torch.save(sd, src, pickle_protocol=proto, _use_new_zipfile_serialization=False)
        yield f"legacy-protocol-{proto}", Case(src, dict(trusted_load(src)), fresh=_net)

    plain = tmp / "sd.plain.pt"
    torch.save({"a": w, "a.t": w.t(), **sd}, plain)
    src = tmp / "sd.deflated.pt"
    _deflated(plain, src)
    yield "zip-deflated", Case(src, dict(trusted_load(src)))

    tar = tc.TorchTar(tensors={"w": [1.5, -2.0, 3.25, float("inf")], "b": [0.0, -0.0]})
    src = tmp / "torch01.tar"
    src.write_bytes(tc.tar_bytes(tar.members()))
    yield "tar-torch-0.1", Case(src, dict(trusted_load(src)))

    src = tmp / "torch01_views.tar"
    src.write_bytes(tc.tar_bytes(_ViewTar(tensors={"w": [1.5, -2.0, 3.25, 7.0, 9.0, 11.0],
                                                   "b": [0.0, -0.0, 5.0, 6.0]}).members()))
    yield "tar-torch-0.1-views", Case(src, dict(trusted_load(src)))

    src = tmp / "in.safetensors"
    save_file({"x": w.contiguous(), "y": torch.arange(7, dtype=torch.uint8)}, str(src), metadata={"k": "v"})
    yield "safetensors", Case(src, load_file(str(src)))

    folder = tmp / "sharded_safetensors"  # a save_pretrained-style folder: two shards and their index
    folder.mkdir()
    keys = list(sd)
    shards = {"model-00001-of-00002.safetensors": keys[:3], "model-00002-of-00002.safetensors": keys[3:]}
    for name, part in shards.items():
        save_file({k: sd[k].contiguous() for k in part}, str(folder / name))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum(t.nbytes for t in sd.values())},
         "weight_map": {k: name for name, part in shards.items() for k in part}}))
    expected = {k: v for name in shards for k, v in load_file(str(folder / name)).items()}
    yield "sharded-safetensors-index", Case(folder / "model.safetensors.index.json", expected, fresh=_net)
    yield "sharded-safetensors-folder", Case(folder, expected, fresh=_net)

    dcp_dir = tmp / "dcp"  # torch.distributed.checkpoint, one process: each tensor a torch.save inside .distcp
    base = torch.randn(4, 6)
    dcp_sd = {"w": base, "t": base.t(), "rows": base[1:, ::2], "b": torch.arange(5), "s": torch.tensor(2.5),
              "h": torch.randn(6).to(torch.bfloat16), "f8": torch.randn(3).to(torch.float8_e5m2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no process group": the single-process save is what we want
        dcp.save(dcp_sd, checkpoint_id=str(dcp_dir))
        filled = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in dcp_sd.items()}
        dcp.load(filled, checkpoint_id=str(dcp_dir))
    yield "dcp", Case(dcp_dir, filled)

    ema = _net().state_dict()
    src = tmp / "ema.pt"
    torch.save({"model": sd, "ema": {"model": ema, "decay": 0.999}, "step": 10}, src)
    loaded = trusted_load(src)
    yield "key-ema", Case(src, dict(loaded["ema"]["model"]), args=["--key", "ema/model"], fresh=_net)
    yield "key-model", Case(src, dict(loaded["model"]), args=["--key", "model"], fresh=_net)

    for how in ("copy", "view"):  # Conv1D-style [in, out] weights: --apply-fix writes them as the target's [out, in]
        src = tmp / f"transposed_{how}.pt"
        stored = {k: (v.t().contiguous() if how == "copy" else v.t()) if v.dim() == 2 else v for k, v in sd.items()}
        torch.save(stored, src)
        yield f"transposed-{how}-apply-fix", Case(src, dict(sd), args=["--snapshot", str(snap), "--apply-fix"],
                                                  fresh=_net)
    src = tmp / "lightning.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 2, "global_step": 9,
                "pytorch-lightning_version": "2.4.0", "hyper_parameters": {"lr": 0.1}}, src)
    yield "lightning-apply-fix", Case(src, dict(sd), args=["--snapshot", str(snap), "--apply-fix"], fresh=_net)


NAMES = ["torchscript-resnet18", "torchscript-traced", "torch-export", "raw-pickle-p0", "raw-pickle-p1",
         "raw-pickle-p2", "raw-pickle-p4", "raw-pickle-p5", "torch-save-protocol-1", "torch-save-protocol-2",
         "torch-save-protocol-3", "torch-save-protocol-4", "torch-save-protocol-5", "legacy-protocol-1",
         "legacy-protocol-2", "legacy-protocol-4", "zip-deflated", "tar-torch-0.1", "safetensors", "key-ema",
         "key-model", "lightning-apply-fix", "sharded-safetensors-index", "sharded-safetensors-folder", "dcp",
         "transposed-copy-apply-fix", "transposed-view-apply-fix", "tar-torch-0.1-views", "torchscript-shared-module"]


SCRIPTED = '''
import torch
from torch import nn


class Shared(nn.Module):
    """One Linear under two names, a non-persistent buffer, a tied embedding/head pair."""

    def __init__(self):
        super().__init__()
        lin = nn.Linear(3, 3)
        self.a = lin
        self.b = lin
        self.register_buffer("scratch", torch.ones(2), persistent=False)
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(self.b(self.a(x)))
'''


def _scripted_shared(tmp: Path) -> Case:
    """torch.jit.script needs the class's source file: written here, imported for the scripting only. The
    archive's state_dict() (torch.jit.load) lists both names of the shared Linear, and the buffer TorchScript
    does not keep as non-persistent."""
    (tmp / "ckptlint_scripted_mod.py").write_text(SCRIPTED)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mp.syspath_prepend(str(tmp))
        torch.manual_seed(12)
        module = importlib.import_module("ckptlint_scripted_mod")
        src = tmp / "scripted_shared.pt"
        torch.jit.save(torch.jit.script(module.Shared()), src)
        expected = state_dict_of(torch.jit.load(src))
        sys.modules.pop("ckptlint_scripted_mod", None)
    assert {"a.weight", "b.weight", "scratch", "emb.weight", "head.weight"} <= set(expected)
    return Case(src, expected)


@pytest.fixture(scope="module")
def converted(module_tmp: Path) -> tuple[dict[str, Case], dict[str, Converted], Path]:
    tmp = module_tmp
    (tmp / "netmod.py").write_text(
        "from torch import nn\n\n\ndef Net():\n"
        "    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))\n")
    snap = tmp / "net.json"
    r = CliRunner()("snapshot", "netmod:Net", "-o", snap, pythonpath=[tmp])
    assert r.returncode == 0, r.stderr
    cases = dict(_cases(tmp, snap))
    cases["torchscript-shared-module"] = _scripted_shared(tmp)
    (tmp / "out").mkdir()
    jobs: list[list[str | Path]] = [["convert", c.src, tmp / "out" / f"{n}.safetensors", *c.args]
                                    for n, c in cases.items()]
    results = convert_torchfree(jobs, tmp / "run")
    return cases, dict(zip(cases, results, strict=True)), tmp / "out"


def test_every_case_is_run(converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    assert sorted(converted[0]) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_convert_equals_torch_bit_for_bit(name: str,
                                          converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    cases, results, out = converted
    r = results[name]
    assert r.code == 0, (r.code, r.text[-3000:])
    assert "Traceback" not in r.text
    assert_output_equals(out / f"{name}.safetensors", cases[name].expected)
    fresh = cases[name].fresh
    if fresh is not None:
        result = fresh().load_state_dict(load_file(str(out / f"{name}.safetensors")), strict=True)
        assert not result.missing_keys and not result.unexpected_keys


def test_deflated_members_really_are_compressed(converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    with zipfile.ZipFile(converted[0]["zip-deflated"].src) as z:
        assert {i.compress_type for i in z.infolist() if "/data/" in i.filename} == {zipfile.ZIP_DEFLATED}


def test_raw_pickle_without_force_is_refused_naming_the_loader(
        converted: tuple[dict[str, Case], dict[str, Converted], Path], tmp_path: Path) -> None:
    (r,) = convert_torchfree([["convert", converted[0]["raw-pickle-p2"].src, tmp_path / "o.safetensors"]],
                             tmp_path / "run")
    assert r.code == 2 and "torch.storage._load_from_bytes" in r.stderr and "--force" in r.stderr, r.text
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("how", ["copy", "view"])
def test_transposed_weights_are_recorded(how: str, converted: tuple[dict[str, Case], dict[str, Converted], Path]
                                         ) -> None:
    _, results, out = converted
    name = f"transposed-{how}-apply-fix"
    assert results[name].code == 0, results[name].text
    with safe_open(str(out / f"{name}.safetensors"), "pt") as f:
        assert sorted(json.loads((f.metadata() or {})["ckptlint_transposed"])) == ["0.weight", "3.weight"]


def test_protocol_0_files_torch_cannot_read_are_refused(tmp_path: Path) -> None:
    """torch.save(pickle_protocol=0) writes string persistent ids its own loader rejects: convert refuses too."""
    jobs: list[list[str | Path]] = []
    for fmt in ("zip", "legacy"):
        src = tmp_path / f"p0.{fmt}.pt"
        torch.save(_net().state_dict(), src, pickle_protocol=0, _use_new_zipfile_serialization=(fmt == "zip"))
        with pytest.raises(AssertionError):  # torch's persistent_load: "saved_id must be a tuple, got str"
            torch.load(src, weights_only=False)
        jobs.append(["convert", src, tmp_path / f"{fmt}.safetensors"])
    for job, r in zip(jobs, convert_torchfree(jobs, tmp_path / "run"), strict=True):
        assert r.code == 2 and "torch.load fails" in r.stderr and not Path(job[2]).exists(), r.text
