"""transformers / peft / timm: ckptlint's view of each library's own loader against that loader.

Tiny random models saved with the real libraries (no network); from_pretrained on the local folders,
peft's set_peft_model_state_dict, timm's load_checkpoint are the oracles. Every snippet ckptlint
suggests runs unchanged in one subprocess; every tensor it loads is compared with the loader's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import ckptlint

BERT: dict[str, Any] = {"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 16, "max_position_embeddings": 16}
GPT2: dict[str, Any] = {"vocab_size": 50, "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16,
                        "bos_token_id": 0, "eos_token_id": 0}


def _check(path: Path, target: str, **kwargs: Any) -> Any:
    rep = ckptlint.check(str(path), model=target, model_kwargs=kwargs, use_config=False)
    fr = rep.files[0]
    assert fr.error is None, fr.error
    return fr


def _oracle(cls: Any, folder: Path, **kwargs: Any) -> tuple[bool, set[str], set[str], set[str], Any]:
    """from_pretrained's verdict and its loading info (missing, unexpected, mismatched)."""
    try:
        model, info = cls.from_pretrained(str(folder), output_loading_info=True, **kwargs)
    except RuntimeError:
        model, info = cls.from_pretrained(str(folder), output_loading_info=True, ignore_mismatched_sizes=True,
                                          **kwargs)
        return False, set(info["missing_keys"]), set(info["unexpected_keys"]), \
            {k for k, *_ in info["mismatched_keys"]}, model
    return True, set(info["missing_keys"]), set(info["unexpected_keys"]), \
        {k for k, *_ in info["mismatched_keys"]}, model


def _library(path: Path, target: str, **kwargs: Any) -> Any:
    from ckptlint.checker import _resolve_spec
    from ckptlint.compat.analyze import analyze
    from ckptlint.formats import read_inventory
    from ckptlint.limits import DEFAULT_LIMITS

    sig, model = _resolve_spec(target, kwargs)
    return analyze(read_inventory(str(path), DEFAULT_LIMITS), sig, model=model)


def _make(tmp: Path) -> list[tuple[str, Path, str, str, dict[str, Any]]]:
    """(case, checkpoint file, oracle class name, ckptlint target, kwargs) for every transformers case."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        GPT2Model,
    )

    torch.manual_seed(0)
    base = tmp / "bert-base"
    BertModel(BertConfig(**BERT)).save_pretrained(base)
    out: list[tuple[str, Path, str, str, dict[str, Any]]] = []
    out.append(("prefix added (safetensors)", base / "model.safetensors", "BertForSequenceClassification",
                "transformers:BertForSequenceClassification", {"config": str(base)}))
    out.append(("save_pretrained folder as the input", base, "BertForSequenceClassification",
                "transformers:BertForSequenceClassification", {"config": str(base / "config.json")}))
    task = tmp / "bert-task"
    BertForSequenceClassification(BertConfig(**BERT, num_labels=3)).save_pretrained(task)
    out.append(("prefix removed", task / "model.safetensors", "BertModel", "transformers:BertModel",
                {"config": str(task / "config.json")}))
    out.append(("resized head", task / "model.safetensors", "BertForSequenceClassification",
                "transformers:BertForSequenceClassification", {"config": str(task), "num_labels": 5}))
    gpt = tmp / "gpt2"
    lm = GPT2LMHeadModel(GPT2Config(**GPT2))
    lm.save_pretrained(gpt)
    out.append(("tied embeddings (safetensors, lm_head not stored)", gpt / "model.safetensors", "GPT2LMHeadModel",
                "transformers:GPT2LMHeadModel", {"config": str(gpt)}))
    out.append(("lm model into base (prefix removed)", gpt / "model.safetensors", "GPT2Model",
                "transformers:GPT2Model", {"config": str(gpt)}))
    gbin = tmp / "gpt2-bin"
    gbin.mkdir()
    shutil.copy(gpt / "config.json", gbin / "config.json")
    torch.save(lm.state_dict(), gbin / "pytorch_model.bin")  # .bin: lm_head and wte share one storage
    out.append((".bin with both tied keys", gbin / "pytorch_model.bin", "GPT2LMHeadModel",
                "transformers:GPT2LMHeadModel", {"config": str(gbin)}))
    shard = tmp / "gpt2-sharded"
    lm.save_pretrained(shard, max_shard_size="2KB")
    out.append(("sharded index", shard / "model.safetensors.index.json", "GPT2LMHeadModel",
                "transformers:GPT2LMHeadModel", {"config": str(shard)}))
    gbase = tmp / "gpt2-base"
    GPT2Model(GPT2Config(**GPT2)).save_pretrained(gbase)
    out.append(("base into lm head (prefix added, head tied)", gbase / "model.safetensors", "GPT2LMHeadModel",
                "transformers:GPT2LMHeadModel", {"config": str(gbase)}))
    bbin = tmp / "bert-bin"
    bbin.mkdir()
    shutil.copy(task / "config.json", bbin / "config.json")
    legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
              for k, v in BertForSequenceClassification(BertConfig(**BERT, num_labels=3)).state_dict().items()}
    legacy["bert.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)  # persistent in old checkpoints
    torch.save(legacy, bbin / "pytorch_model.bin")  # legacy LayerNorm names, .bin
    out.append(("legacy gamma/beta .bin into the base model", bbin / "pytorch_model.bin", "BertModel",
                "transformers:BertModel", {"config": str(bbin)}))
    old_gpt = tmp / "gpt2-old"
    old_gpt.mkdir()
    shutil.copy(gpt / "config.json", old_gpt / "config.json")
    sd = dict(lm.state_dict())
    sd["transformer.h.0.attn.bias"] = torch.tril(torch.ones(16, 16)).view(1, 1, 16, 16)  # old GPT-2 buffers
    sd["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(sd, old_gpt / "pytorch_model.bin")
    out.append(("old GPT-2 attention buffers (keys to ignore)", old_gpt / "pytorch_model.bin", "GPT2LMHeadModel",
                "transformers:GPT2LMHeadModel", {"config": str(old_gpt)}))
    return out


@pytest.fixture(scope="module")
def hf_cases(module_tmp: Path) -> list[tuple[str, Path, str, str, dict[str, Any]]]:
    return _make(module_tmp)


def test_from_pretrained_view_equals_from_pretrained(hf_cases: list[Any]) -> None:
    seen = 0
    for case, path, oracle_cls, target, kwargs in hf_cases:
        analysis = _library(path, target, **kwargs)
        lib = analysis.library
        assert lib is not None and lib.library == "transformers", case
        cls = getattr(transformers, oracle_cls)
        extra = {k: v for k, v in kwargs.items() if k != "config"}
        loads, missing, unexpected, mismatched, _ = _oracle(cls, path if path.is_dir() else path.parent, **extra)
        assert (lib.loads, set(lib.missing), set(lib.unexpected), set(lib.mismatched)) == \
            (loads, missing, unexpected, mismatched), case
        said = " ".join(lib.ignored)
        if case.startswith("legacy"):
            assert "renamed by BertModel's weight conversions" in said and "LayerNorm.gamma ->" in said
        if case.startswith("legacy"):
            assert "position_ids" in said
        if case.startswith("old GPT-2"):
            assert "transformer.h.0.attn.bias" in said  # _keys_to_ignore_on_load_unexpected
            assert "transformer.h.0.attn.bias" in set(analysis.result.unexpected)  # torch's own verdict
        if case.startswith("base into lm head"):
            assert "lm_head.weight is tied to transformer.wte.weight" in said and "prefix 'transformer.' added" in said
        seen += 1
    assert seen == 11


def test_keys_from_pretrained_handles_are_not_ck202(hf_cases: list[Any]) -> None:
    """The base checkpoint into the task class: torch's verdict misses the 'bert.' prefix on every key;
    from_pretrained adds it, so CK201/CK202 name only the classifier, and CK212 says why."""
    _, path, _, target, kwargs = hf_cases[0]
    fr = _check(path, target, **kwargs)
    codes = {f.code: f for f in fr.findings}
    assert "CK202" not in codes
    assert set(codes["CK201"].message.split(": ", 1)[1].split(", ")) == {"classifier.weight", "classifier.bias"}
    assert "base-model prefix 'bert.' added" in codes["CK212"].message
    # the fix is from_pretrained, not a load_state_dict(strict=False) of the raw keys
    fix = codes["CK201"].fix or ""
    assert fix.startswith("load it with BertForSequenceClassification.from_pretrained") and "strict" not in fix
    assert fix.endswith("2 keys stay initialised")
    assert len(fr.compat.unexpected) == 23  # torch's own verdict is kept in the report


def test_snippets_run_unchanged_and_load_what_from_pretrained_loads(hf_cases: list[Any], tmp_path: Path) -> None:
    runs = []
    for i, (case, path, oracle_cls, target, kwargs) in enumerate(hf_cases):
        analysis = _library(path, target, **kwargs)
        if analysis.fix is None:
            continue
        out = tmp_path / f"out{i}.pt"
        snippet = analysis.fix.snippet
        runs.append((case, path, oracle_cls, kwargs, analysis.fix.random_init, snippet, out))
    # a copy under a non-standard name: the snippet reads the state_dict and passes it to from_pretrained
    case, path, oracle_cls, target, kwargs = hf_cases[0]
    odd = tmp_path / "weights.safetensors"
    shutil.copy(path, odd)
    analysis = _library(odd, target, **kwargs)
    assert analysis.fix is not None and "state_dict=state_dict" in analysis.fix.snippet
    runs.append(("non-standard name", path, oracle_cls, kwargs, analysis.fix.random_init, analysis.fix.snippet,
                 tmp_path / "odd.pt"))
    script = ["import torch"]
    for _, _, _, _, _, snippet, out in runs:
        script.append(f"exec({snippet!r}, ns := {{}})")
        script.append(f"torch.save(ns['model'].state_dict(), {str(out)!r})")
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(runs) >= 4
    for case, path, oracle_cls, kwargs, left, _, out in runs:
        extra = {k: v for k, v in kwargs.items() if k != "config"}
        folder = path if path.is_dir() else path.parent
        _, _, _, _, model = _oracle(getattr(transformers, oracle_cls), folder, **extra)
        want = model.state_dict()
        got = torch.load(out, weights_only=True)
        assert set(got) == set(want), case
        for k, v in want.items():
            if k in left:
                continue  # named by ckptlint as left at its initial value
            assert torch.equal(got[k], v), (case, k)


def test_snapshot_of_a_transformers_target_gives_torchs_verdict(hf_cases: list[Any], tmp_path: Path) -> None:
    """``ckptlint snapshot transformers:CLASS --model-kwargs '{"config": ...}'``: later checks need no
    transformers; they give torch's load_state_dict verdict (the from_pretrained view needs the class)."""
    from ckptlint.cli import main

    _, path, _, target, kwargs = hf_cases[0]
    snap = tmp_path / "snap.json"
    assert main(["snapshot", target, "--model-kwargs", json.dumps(kwargs), "-o", str(snap)]) == 0
    live = _check(path, target, **kwargs).compat
    fr = ckptlint.check(str(path), snapshot=str(snap), use_config=False).files[0]
    assert live is not None and fr.compat is not None
    assert (fr.compat.missing, fr.compat.unexpected, fr.compat.strict_ok) == \
        (live.missing, live.unexpected, live.strict_ok)
    assert json.loads(snap.read_text())["target"] == target
