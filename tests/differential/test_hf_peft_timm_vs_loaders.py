"""peft and timm: ckptlint's view of their loaders against the loaders (tiny random models, no network)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import peft
import pytest
import timm
import torch

import ckptlint

BERT: dict[str, Any] = {"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 16, "max_position_embeddings": 16}


def _analysis(path: Path, target: Any, **kwargs: Any) -> Any:
    from ckptlint.checker import _resolve_spec
    from ckptlint.compat.analyze import analyze
    from ckptlint.formats import read_inventory
    from ckptlint.limits import DEFAULT_LIMITS
    from ckptlint.targets.signature import signature_of

    if isinstance(target, str):
        sig, model = _resolve_spec(target, kwargs)
    else:
        sig, model = signature_of(target, "peft:PeftModel", {}, "cpu"), target
    return analyze(read_inventory(str(path), DEFAULT_LIMITS), sig, model=model)


def _run(snippets: list[tuple[str, Path]]) -> None:
    script = ["import torch"] + [f"exec({s!r}, ns := {{}})\ntorch.save(ns['model'].state_dict(), {str(o)!r})"
                                 for s, o in snippets]
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def lora(module_tmp: Path) -> tuple[Path, Path, Any]:
    from transformers import BertConfig, BertModel

    tmp = module_tmp
    torch.manual_seed(0)
    base_dir = tmp / "base"
    base = BertModel(BertConfig(**BERT))
    base.save_pretrained(base_dir)
    cfg = peft.LoraConfig(r=2, target_modules=["query", "value"], init_lora_weights=False)
    model = peft.get_peft_model(base, cfg)
    model.save_pretrained(tmp / "adapter")
    torch.save(model.state_dict(), tmp / "full.pt")
    return base_dir, tmp / "adapter", model


def _fresh_peft(base_dir: Path) -> Any:
    from transformers import BertModel

    return peft.get_peft_model(BertModel.from_pretrained(str(base_dir)),
                               peft.LoraConfig(r=2, target_modules=["query", "value"]))


def test_adapter_against_base_is_an_adapter_not_a_drop_fix(lora: tuple[Path, Path, Any]) -> None:
    base_dir, adapter, _ = lora
    path = adapter / "adapter_model.safetensors"
    a = _analysis(path, "transformers:BertModel", config=str(base_dir))
    assert a.library.library == "peft" and a.library.loads
    assert a.fix is None  # never "drop every adapter key"
    rep = ckptlint.check(str(path), model="transformers:BertModel", model_kwargs={"config": str(base_dir)},
                         use_config=False)
    codes = {f.code: f.message for f in rep.files[0].findings}
    assert "CK202" not in codes and "CK206" not in codes
    assert "CK201" not in codes  # an adapter file never holds the base weights: not "missing"
    assert "a LoRA adapter (rank 2, 2 modules)" in codes["CK212"]
    # the oracle: PeftModel.from_pretrained attaches it to the base model; the snippet does the same
    from transformers import BertModel

    want = peft.PeftModel.from_pretrained(BertModel.from_pretrained(str(base_dir)), str(adapter)).state_dict()
    out = adapter.parent / "attached.pt"
    _run([(a.library.snippet, out)])
    got = torch.load(out, weights_only=True)
    assert set(got) == set(want) and any(".lora_A.default." in k for k in got)
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def test_adapter_that_does_not_fit_the_base(lora: tuple[Path, Path, Any], tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    _, adapter, _ = lora
    wide = tmp_path / "wide"
    BertModel(BertConfig(**{**BERT, "hidden_size": 16, "intermediate_size": 32})).save_pretrained(wide)
    a = _analysis(adapter / "adapter_model.safetensors", "transformers:BertModel", config=str(wide))
    assert not a.library.loads and a.fix is None
    assert any("does not fit the layer's input 16" in n for n in a.library.notes)
    with pytest.raises(RuntimeError, match="size mismatch"):  # the oracle agrees: it cannot be attached
        peft.PeftModel.from_pretrained(BertModel.from_pretrained(str(wide)), str(adapter))


def test_adapter_against_peft_model_inserts_the_adapter_name(lora: tuple[Path, Path, Any]) -> None:
    from safetensors.torch import load_file

    base_dir, adapter, _ = lora
    path = adapter / "adapter_model.safetensors"
    target = _fresh_peft(base_dir)
    a = _analysis(path, target)
    oracle = peft.set_peft_model_state_dict(_fresh_peft(base_dir), load_file(str(path)))
    lib = a.library
    assert lib.loads and set(lib.unexpected) == set(oracle.unexpected_keys) == set()
    assert set(lib.missing) == {k for k in oracle.missing_keys if ".lora_" in k} == set()
    assert "lora_A.default.weight" in lib.notes[0]
    assert all(".lora_" not in k for k in lib.explained_missing if k in oracle.missing_keys)
    ns: dict[str, Any] = {"model": _fresh_peft(base_dir)}  # the snippet's one input: the user's PeftModel
    exec(lib.snippet, ns)  # noqa: S102 - the suggested snippet, run unchanged (our own generated code)
    from transformers import BertModel

    want = peft.PeftModel.from_pretrained(BertModel.from_pretrained(str(base_dir)), str(adapter)).state_dict()
    got = ns["model"].state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def test_full_peft_state_dict_into_base_maps_base_layer(lora: tuple[Path, Path, Any], tmp_path: Path) -> None:
    base_dir, adapter, model = lora
    a = _analysis(adapter.parent / "full.pt", "transformers:BertModel", config=str(base_dir))
    assert a.fix is not None and a.fix.strict and a.fix.random_init == []
    assert any("discarded" in d and "lora_A" in d for d in a.fix.diagnosis)
    out = tmp_path / "out.pt"
    _run([(a.fix.snippet, out)])
    got = torch.load(out, weights_only=True)
    want = model.get_base_model().state_dict()  # peft's base model: base_layer weights under their own names
    want = {k.replace(".base_layer.", "."): v for k, v in want.items() if ".lora_" not in k}
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def _train_file(path: Path, num_classes: int, *, ema: bool, prefix: str = "") -> tuple[dict[str, Any], Any]:
    torch.manual_seed(num_classes)
    model = timm.create_model("test_resnet", num_classes=num_classes)
    ema_model = timm.create_model("test_resnet", num_classes=num_classes)
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    ckpt: dict[str, Any] = {"epoch": 3, "arch": "test_resnet", "state_dict": sd,
                            "args": argparse.Namespace(lr=0.1, model="test_resnet")}
    if ema:
        ckpt["state_dict_ema"] = ema_model.state_dict()
    torch.save(ckpt, path)
    return (ckpt["state_dict_ema"] if ema else model.state_dict()), ckpt


@pytest.mark.parametrize(("ema", "prefix", "classes"), [(True, "", 10), (False, "module.", 10), (True, "", 5)])
def test_timm_pick_equals_load_checkpoint(tmp_path: Path, ema: bool, prefix: str, classes: int) -> None:
    path = tmp_path / "train.pth.tar"
    loaded, _ = _train_file(path, 10, ema=ema, prefix=prefix)
    a = _analysis(path, "timm:test_resnet", num_classes=classes)
    lib = a.library
    assert lib.library == "timm"
    assert ("takes 'state_dict_ema'" if ema else "takes 'state_dict'") in lib.notes[0]
    target = timm.create_model("test_resnet", num_classes=classes)
    try:
        timm.models.load_checkpoint(target, str(path))
        oracle_loads = True
    except RuntimeError:
        oracle_loads = False
    assert lib.loads == oracle_loads == (classes == 10)
    out = tmp_path / "out.pt"
    left: list[str] = []
    if classes != 10:
        assert any("resized head" in n for n in lib.notes) and set(lib.mismatched) == {"fc.weight", "fc.bias"}
        assert a.fix is not None and "timm.models.load_state_dict" in a.fix.snippet
        left = a.fix.random_init
        assert set(left) == {"fc.weight", "fc.bias"}
        _run([(a.fix.snippet, out)])  # a training file with argparse.Namespace args: runs as given
    else:
        _run([(lib.snippet, out)])
    got = torch.load(out, weights_only=True)
    assert set(got) == set(target.state_dict())
    for k, v in loaded.items():
        if k not in left:
            assert torch.equal(got[k], v), k
    assert json.dumps(lib.notes)  # plain data


def test_peft_model_target_from_the_command_line_spelling(lora: tuple[Path, Path, Any], tmp_path: Path) -> None:
    """``--model peft:PeftModel --model-kwargs '{"base": ..., "config": ..., "adapter": ...}'``: the PeftModel
    built on meta from the adapter's own config; the snippet builds it the same way and runs as given."""
    from transformers import BertModel

    base_dir, adapter, _ = lora
    path = adapter / "adapter_model.safetensors"
    kwargs = {"base": "transformers:BertModel", "config": str(base_dir), "adapter": str(adapter)}
    rep = ckptlint.check(str(path), model="peft:PeftModel", model_kwargs=kwargs, use_config=False)
    fr = rep.files[0]
    codes = {f.code for f in fr.findings}
    assert codes == {"CK212"}, [f.message for f in fr.findings]  # loads: no CK201 for the base weights
    a = _analysis(path, "peft:PeftModel", **kwargs)
    assert a.library.loader == "set_peft_model_state_dict" and a.library.loads
    out = tmp_path / "out.pt"
    _run([(a.library.snippet, out)])
    want = peft.PeftModel.from_pretrained(BertModel.from_pretrained(str(base_dir)), str(adapter)).state_dict()
    got = torch.load(out, weights_only=True)
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k
