"""Folders and archives as inputs, read without torch (issue #12): DCP ``.metadata``, ``.pt2``
weights configs, save_pretrained / accelerate folders, and the snippet loaders for each format.

Inputs are written byte by byte here (pickle opcodes, zip members, safetensors headers), so these
tests need no torch; tests/differential/test_training_libs_vs_torch.py checks the same readers on
files the real libraries write.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

import ckptlint
from _cli_files import safetensors_file
from ckptlint.compat.loaders import with_loader
from ckptlint.compat.optimizer import optimizer_state
from ckptlint.errors import CheckpointError

# -- a DCP .metadata, assembled from protocol-2 opcodes -------------------------------------------

META = "torch.distributed.checkpoint.metadata"


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _global(mod: str, name: str) -> bytes:
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def _list(items: list[bytes]) -> bytes:
    return b"](" + b"".join(items) + b"e"


def _dict(items: dict[str, bytes]) -> bytes:
    return b"}(" + b"".join(_str(k) + v for k, v in items.items()) + b"u"


def _obj(name: str, state: bytes) -> bytes:
    """``cls.__new__(cls)`` then ``BUILD`` with ``state`` (how a dataclass pickles)."""
    return _global(META, name) + b")\x81" + state + b"b"


def _tensor_meta(dtype: str, size: list[int]) -> bytes:
    props = _obj("TensorProperties", _list([_global("torch", dtype), b"\x89", b"\x89"]))
    return _obj("TensorStorageMetadata", _dict({"properties": props, "size": _list([_int(d) for d in size]),
                                               "chunks": _list([])}))


def _dcp_metadata(payload: bytes = b"") -> bytes:
    sdm = {"model.fc.weight": _tensor_meta("float32", [3, 4]), "model.fc.bias": _tensor_meta("bfloat16", [3]),
           "step": _obj("BytesStorageMetadata", b"}")}
    planner = {"model.fc.weight": _list([_str("model"), _str("fc.weight")]),
               "model.fc.bias": _list([_str("model"), _str("fc.bias")]), "step": _list([_str("step")])}
    state = _dict({"state_dict_metadata": _dict(sdm), "planner_data": _dict(planner)})
    return b"\x80\x02" + payload + _obj("Metadata", state) + b"."


def test_dcp_folder_reads_metadata_statically(tmp_path: Path) -> None:
    (tmp_path / ".metadata").write_bytes(_dcp_metadata())
    (tmp_path / "__0_0.distcp").write_bytes(b"\x00" * 64)
    inv = ckptlint.inspect(str(tmp_path))
    assert inv.format == "dcp"
    assert [(t.path, t.shape, t.dtype) for t in inv.tensors] == [
        (("model", "fc.weight"), (3, 4), "float32"), (("model", "fc.bias"), (3,), "bfloat16")]
    assert inv.structure["model"] == {"fc.weight": {"__tensor__": 0}, "fc.bias": {"__tensor__": 1}}
    assert inv.structure["step"] == {"__object__": f"{META}.BytesStorageMetadata"}
    assert inv.facts.extra["dcp_shards"] == ["__0_0.distcp"]


def test_dcp_metadata_payload_is_reported_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # DCP runs pickle.load on .metadata: a REDUCE there runs when DCP loads the folder
    payload = _global("pathlib", "Path") + b"(" + _str(str(marker)) + b"tR" + b"0"
    (tmp_path / ".metadata").write_bytes(_dcp_metadata(payload))
    inv = ckptlint.inspect(str(tmp_path))
    assert "pathlib.Path" in {g.qualname for g in inv.globals}
    assert len(inv.tensors) == 2 and not marker.exists()


def test_dcp_metadata_that_is_not_metadata(tmp_path: Path) -> None:
    (tmp_path / ".metadata").write_bytes(b"\x80\x02" + _dict({"a": _int(1)}) + b".")
    inv = ckptlint.inspect(str(tmp_path))
    assert inv.format == "dcp" and not inv.tensors
    assert any("does not hold a Metadata object" in n for n in inv.notes)


# -- torch.export .pt2 ---------------------------------------------------------------------------


def _pt2(path: Path, config: object, extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/data/weights/model_weights_config.json", json.dumps(config))
        z.writestr("m/data/weights/weight_0", b"\x00" * 24)
        for name, data in (extra or {}).items():
            z.writestr(name, data)


def _spec(path_name: str, dtype: int, sizes: list[int], use_pickle: bool = False) -> dict[str, object]:
    return {"path_name": path_name, "is_param": True, "use_pickle": use_pickle,
            "tensor_meta": {"dtype": dtype, "sizes": [{"as_int": s} for s in sizes], "requires_grad": True,
                            "device": {"type": "cpu", "index": None}, "strides": [{"as_int": 1}],
                            "storage_offset": {"as_int": 0}, "layout": 7}}


def test_pt2_weights_config(tmp_path: Path) -> None:
    path = tmp_path / "m.pt2"
    _pt2(path, {"config": {"fc.weight": _spec("weight_0", 7, [2, 3]), "fc.bias": _spec("weight_1", 13, [2])}})
    inv = ckptlint.inspect(str(path))
    assert inv.format == "torch-export"
    assert [(t.path, t.shape, t.dtype) for t in inv.tensors] == [(("fc.weight",), (2, 3), "float32"),
                                                                   (("fc.bias",), (2,), "bfloat16")]
    assert inv.tensors[0].storage_bytes == 24 and inv.tensors[1].storage_bytes is None  # weight_1 absent
    verdict = ckptlint.check(str(path)).files[0].verdict
    assert verdict is not None and not verdict.loads  # torch.load cannot open a .pt2


def test_pt2_opaque_constant_pickle_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "m.pt2"
    evil = b"\x80\x02" + _global("os", "system") + b"(" + _str("true") + b"tR."
    _pt2(path, {"config": {"w": _spec("weight_0", 7, [6])}}, {
        "m/data/constants/model_constants_config.json": json.dumps(
            {"config": {"obj": {"path_name": "opaque_obj_0", "use_pickle": True}}}).encode(),
        "m/data/constants/opaque_obj_0": evil})
    inv = ckptlint.inspect(str(path))
    assert "os.system" in {g.qualname for g in inv.globals}
    assert "data/constants/opaque_obj_0" in inv.facts.loaded_streams


@pytest.mark.parametrize("config", [b"{not json", b'{"nope": 1}', b"[]"])
def test_pt2_bad_config_is_one_line(config: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.pt2"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/data/weights/model_weights_config.json", config)
    with pytest.raises(CheckpointError, match=r"torch\.export archive") as err:
        ckptlint.inspect(str(path))
    assert "\n" not in str(err.value)


# -- folders ---------------------------------------------------------------------------------------


def test_accelerate_folder_is_its_model_file(tmp_path: Path) -> None:
    safetensors_file(tmp_path / "model.safetensors", {"fc.weight": [2, 3], "fc.bias": [2]})
    (tmp_path / "optimizer.bin").write_bytes(b"not read")
    (tmp_path / "random_states_0.pkl").write_bytes(b"not read")
    inv = ckptlint.inspect(str(tmp_path))
    assert inv.format == "safetensors" and inv.path.endswith("model.safetensors")
    assert {t.key for t in inv.tensors} == {"fc.weight", "fc.bias"}
    assert any("optimizer.bin, random_states_0.pkl are training state" in n for n in inv.notes)


def test_folder_without_a_checkpoint_is_exit_2_one_line(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = cli("check", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if "directory with no checkpoint" in line]) == 1


# -- what the compat layer says about them ----------------------------------------------------------


def test_optimizer_state_dict_is_recognised() -> None:
    assert optimizer_state({"state": {"0": {}}, "param_groups": [{"params": [0], "lr": 0.1}]}) is not None
    assert optimizer_state({"state": {}, "param_groups": [{"lr": 0.1}]}) is None  # no params list
    assert optimizer_state({"fc.weight": {"__tensor__": 0}}) is None


SNIPPET = (
    "import torch\nmodel = None\n"
    "checkpoint = torch.load('x', map_location=\"cpu\", weights_only=True)\nstate_dict = checkpoint\n"
)


@pytest.mark.parametrize(("fmt", "path", "call"), [
    ("safetensors", "m.safetensors", "load_file('m.safetensors')"),
    ("sharded-index", "model.safetensors.index.json", "load_file(shard_path)"),
    ("sharded-index", "pytorch_model.bin.index.json", "torch.load(shard_path"),
    ("torchscript", "s.pt", "torch.jit.load('s.pt'"),
    ("torch-export", "m.pt2", "torch.export.load('m.pt2')"),
    ("dcp", "ckpt_dir", "dcp_to_torch_save('ckpt_dir', converted)"),
])
def test_snippet_opens_each_format_with_its_loader(fmt: str, path: str, call: str) -> None:
    out = with_loader(SNIPPET, fmt, path)
    assert call in out and "torch.load('x'" not in out
    compile(out, "<snippet>", "exec")
    assert with_loader(SNIPPET, "torch-zip", "x") == SNIPPET
