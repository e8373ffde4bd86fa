"""Library conventions without torch: a LoRA adapter checked against a snapshot-like signature, and the
``--model-config`` spelling's usage errors (one line, exit 2, before anything is imported)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from ckptlint.compat.compare import CompatResult
from ckptlint.compat.libraries import LibraryView, peft
from ckptlint.compat.unwrap import find_state_dict
from ckptlint.formats import read_inventory
from ckptlint.targets.signature import ModuleSig, Signature, TensorSig


def _safetensors(path: Path, entries: dict[str, tuple[int, ...]]) -> None:
    """A real safetensors file (header + zero data), written by hand: no torch needed."""
    header: dict[str, object] = {}
    offset = 0
    for key, shape in entries.items():
        size = 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))


def _base() -> Signature:
    """A two-Linear base model: q [8, 4] and v [6, 4]."""
    linear = {"weight": TensorSig((8, 4), "float32", "parameter"), "bias": TensorSig((8,), "float32", "parameter")}
    v = {"weight": TensorSig((6, 4), "float32", "parameter"), "bias": TensorSig((6,), "float32", "parameter")}
    return Signature("mylab.models:Base", {}, (
        ModuleSig("", "mylab.Base", None, ("q", "v"), (), {}),
        ModuleSig("q", "torch.nn.Linear", None, (), (), linear),
        ModuleSig("v", "torch.nn.Linear", None, (), (), v)))


def _view(tmp_path: Path, entries: dict[str, tuple[int, ...]],
          config: dict[str, object] | None) -> LibraryView:
    path = tmp_path / "adapter_model.safetensors"
    if config is not None:
        (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    _safetensors(path, entries)
    inv = read_inventory(str(path))
    sd = find_state_dict(inv)
    nothing = CompatResult((), tuple(entries), {}, {}, {})
    view = peft.view(inv, _base(), sd, nothing, None, lambda s: nothing)
    assert view is not None
    return view


GOOD: dict[str, tuple[int, ...]] = {
    "base_model.model.q.lora_A.weight": (2, 4), "base_model.model.q.lora_B.weight": (8, 2),
    "base_model.model.v.lora_A.weight": (2, 4), "base_model.model.v.lora_B.weight": (6, 2)}


def test_a_fitting_adapter_loads_and_gets_no_drop_fix(tmp_path: Path) -> None:
    view = _view(tmp_path, GOOD, {"r": 2, "target_modules": ["q", "v"]})
    assert view.loads and view.no_generic_fix and view.fix is None
    assert view.notes == [("a LoRA adapter (rank 2, 2 modules) for mylab.models:Base: not a state_dict for "
                           "load_state_dict; attach it with peft")]
    assert set(view.explained_unexpected) == set(GOOD)


@pytest.mark.parametrize(("change", "config", "said"), [
    ({"base_model.model.v.lora_B.weight": (5, 2)}, {"r": 2}, "v: lora_B [5, 2] does not fit the layer's output 6"),
    ({"base_model.model.q.lora_A.weight": (2, 3)}, {"r": 2}, "q: lora_A [2, 3] does not fit the layer's input 4"),
    ({}, {"r": 4}, "q: rank 2 (lora_A) / 2 (lora_B) vs r=4 in adapter_config.json"),
    ({"base_model.model.k.lora_A.weight": (2, 4), "base_model.model.k.lora_B.weight": (8, 2)}, None,
     "target module k does not exist in mylab.models:Base"),
    ({}, {"r": 2, "target_modules": ["q", "v", "o"]}, "adapter_config.json targets o, which have no adapter"),
])
def test_an_adapter_that_does_not_fit_says_where(tmp_path: Path, change: dict[str, tuple[int, ...]],
                                                 config: dict[str, object] | None, said: str) -> None:
    view = _view(tmp_path, {**GOOD, **change}, config)
    assert not view.loads and view.fix is None
    assert any(n.startswith(said) for n in view.notes), view.notes


def test_adapter_name_inserted_as_peft_does() -> None:
    assert peft._insert_name("base_model.model.q.lora_A.weight") == "base_model.model.q.lora_A.default.weight"
    assert peft._insert_name("base_model.model.q.lora_B.weight", "x") == "base_model.model.q.lora_B.x.weight"
    assert peft._insert_name("base_model.model.q.weight") == "base_model.model.q.weight"


def test_model_config_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ckptlint.cli import main

    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    assert main(["check", str(ckpt), "--model-config", str(tmp_path), "--isolated"]) == 2
    assert main(["check", str(ckpt), "--model", "transformers:BertModel", "--model-config",
                 str(tmp_path / "none.json"), "--isolated"]) == 2
    assert main(["check", str(ckpt), "--model", "transformers:BertModel", "--isolated"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ckptlint: transformers:BertModel is built from a config: --model-config PATH")
    assert err[-2] == f"ckptlint: transformers config {tmp_path / 'none.json'}: no such file or folder"
    assert "--model-config need --model" in err[0]
