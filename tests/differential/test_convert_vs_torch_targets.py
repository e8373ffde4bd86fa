"""``ckptlint convert`` with a target, shards, hostile files and the Python API, against torch (issue #15).

* A DDP-prefixed state_dict and a pickled ``nn.DataParallel``: ``--snapshot SNAP --apply-fix`` (torch-less) and
  ``--model SPEC --apply-fix`` (torch in-process) write the keys resnet18 expects; ``load_state_dict(strict=True)``
  succeeds and every tensor equals torch's bit for bit.
* A sharded ``pytorch_model.bin.index.json`` (zip and legacy shards) converts to one file, and to shards again.
* A file whose pickle calls ``os.system`` is refused, naming the global; with ``--force`` it converts; the payload
  never runs (marker file).
* ``ckptlint.convert(...)`` in the torch-less process.
* Files saved by transformers and timm convert and load back into their classes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from _convert_oracle import Converted, assert_output_equals, convert_torchfree, state_dict_of, trusted_load
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torchvision import models as M

from conftest import CliRunner

RESNET = "torchvision.models:resnet18"


class Payload:
    """Pickles as ``os.system("touch MARKER")``: what a hostile checkpoint runs on torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return M.resnet18()


def _shards(tmp: Path, fmt: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """mobilenet_v3_small's state_dict in two torch shards with an index; tied keys inside the second shard."""
    torch.manual_seed(0)
    sd = M.mobilenet_v3_small().state_dict()
    keys = list(sd)
    w = torch.randn(5, 5)
    parts = {f"pytorch_model-00001-of-00002.{fmt}.bin": {k: sd[k] for k in keys[: len(keys) // 2]},
             f"pytorch_model-00002-of-00002.{fmt}.bin": {**{k: sd[k] for k in keys[len(keys) // 2:]},
                                                         "tied.a": w, "tied.b": w, "tied.view": w[1:, ::2]}}
    folder = tmp / f"shards-{fmt}"
    folder.mkdir()
    expected: dict[str, torch.Tensor] = {}
    for name, part in parts.items():
        torch.save(part, folder / name, _use_new_zipfile_serialization=(fmt == "zip"))
        expected.update(trusted_load(folder / name))
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": sum(t.nbytes for t in expected.values())},
                                 "weight_map": {k: name for name, part in parts.items() for k in part}}))
    return index, expected


def _sharded_output(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded safetensors set, found through its index (as transformers reads it)."""
    (index,) = folder.glob("*.index.json")
    weight_map = json.loads(index.read_text())["weight_map"]
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        tensors = load_file(str(folder / shard))
        assert all(weight_map[k] == shard for k in tensors)
        out.update(tensors)
    assert set(out) == set(weight_map)
    return out


@pytest.fixture(scope="module")
def work(module_tmp: Path) -> tuple[Path, dict[str, Converted], dict[str, Any]]:
    """Every torch-less conversion of this module, in one process."""
    tmp = module_tmp
    snap = tmp / "resnet18.json"
    r = CliRunner()("snapshot", RESNET, "-o", snap)
    assert r.returncode == 0, r.stderr
    sd = _resnet().state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp / "ddp.pt")
    torch.save(nn.DataParallel(_resnet()), tmp / "ddp_full.pt")
    torch.save({f"_orig_mod.{k}": v for k, v in sd.items()}, tmp / "compiled.pt")  # torch.compile's wrapper
    head = M.resnet18(num_classes=100).state_dict()  # a fine-tuned head: fc differs in shape from the target's
    torch.save(head, tmp / "head100.pt")
    marker = tmp / "marker"
    torch.save({"model": sd, "hook": Payload(marker), "epoch": 1}, tmp / "evil.pt")
    zip_index, zip_expected = _shards(tmp, "zip")
    legacy_index, legacy_expected = _shards(tmp, "legacy")
    (tmp / "resharded").mkdir()
    out = tmp / "out"
    out.mkdir()
    jobs: dict[str, list[str | Path]] = {
        "ddp-fix": ["convert", tmp / "ddp.pt", out / "ddp-fix.safetensors", "--snapshot", snap, "--apply-fix"],
        "compile-fix": ["convert", tmp / "compiled.pt", out / "compile-fix.safetensors", "--snapshot", snap,
                        "--apply-fix"],
        "ddp-nofix": ["convert", tmp / "ddp.pt", out / "ddp-nofix.safetensors", "--snapshot", snap],
        "ddp-full-fix": ["convert", tmp / "ddp_full.pt", out / "ddp-full-fix.safetensors", "--snapshot", snap,
                         "--apply-fix"],
        "head-fix": ["convert", tmp / "head100.pt", out / "head-fix.safetensors", "--snapshot", snap, "--apply-fix"],
        "evil": ["convert", tmp / "evil.pt", out / "evil.safetensors"],
        "evil-force": ["convert", tmp / "evil.pt", out / "evil-force.safetensors", "--force"],
        "shards-zip": ["convert", zip_index, out / "shards-zip.safetensors"],
        "shards-legacy": ["convert", legacy_index, out / "shards-legacy.safetensors"],
        "reshard": ["convert", zip_index, tmp / "resharded" / "model.safetensors", "--max-shard-size", "1MB"],
        "api": ["--api", tmp / "ddp.pt", out / "api.safetensors", json.dumps({"snapshot": str(snap),
                                                                              "apply_fix": True})],
        "api-evil": ["--api", tmp / "evil.pt", out / "api-evil.safetensors", "{}"],
        "api-evil-force": ["--api", tmp / "evil.pt", out / "api-evil-force.safetensors", json.dumps({"force": True})],
    }
    results = convert_torchfree(list(jobs.values()), tmp / "run")
    assert not marker.exists(), "the payload ran"
    expected = {"sd": sd, "head": head, "shards-zip": zip_expected, "shards-legacy": legacy_expected, "marker": marker,
                "snap": snap}
    return tmp, dict(zip(jobs, results, strict=True)), expected


def _ok(r: Converted) -> None:
    assert r.code == 0, (r.code, r.text[-3000:])
    assert "Traceback" not in r.text


@pytest.mark.parametrize("name", ["ddp-fix", "ddp-full-fix", "api", "compile-fix"])
def test_ddp_prefix_apply_fix_loads_strictly(name: str, work: tuple[Path, dict[str, Converted], dict[str, Any]]
                                             ) -> None:
    tmp, results, expected = work
    _ok(results[name])
    out = tmp / "out" / f"{name}.safetensors"
    want = state_dict_of(trusted_load(tmp / "ddp_full.pt").module) if name == "ddp-full-fix" else expected["sd"]
    metadata = assert_output_equals(out, want)
    model = M.resnet18()
    result = model.load_state_dict(load_file(str(out)), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    prefix = "_orig_mod." if name == "compile-fix" else "module."
    mapping = json.loads(metadata["ckptlint_key_mapping"])  # the key mapping applied is recorded
    assert mapping == {k: prefix + k for k in want}, mapping


def test_ddp_prefix_without_fix_keeps_the_keys(work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    tmp, results, expected = work
    _ok(results["ddp-nofix"])
    assert_output_equals(tmp / "out" / "ddp-nofix.safetensors", {f"module.{k}": v for k, v in expected["sd"].items()})
    oracle = M.resnet18().load_state_dict(load_file(str(tmp / "out" / "ddp-nofix.safetensors")), strict=False)
    counts = f"{len(oracle.missing_keys)} missing, {len(oracle.unexpected_keys)} unexpected"  # torch's own count
    assert counts in results["ddp-nofix"].stdout and "--apply-fix" in results["ddp-nofix"].stdout, \
        (counts, results["ddp-nofix"].stdout)


def test_resized_head_apply_fix_drops_it_and_says_it_stays_initialised(
        work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    """The fix drops the mismatched head: the rest equals torch's bytes, strict=False loads it, and the keys the
    output does not fill are exactly the ones torch reports missing."""
    tmp, results, expected = work
    r = results["head-fix"]
    _ok(r)
    head = expected["head"]
    assert_output_equals(tmp / "out" / "head-fix.safetensors", {k: v for k, v in head.items()
                                                                if not k.startswith("fc.")})
    result = M.resnet18().load_state_dict(load_file(str(tmp / "out" / "head-fix.safetensors")), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    assert "fc.weight" in r.stdout and "fc.bias" in r.stdout and "strict=False" in r.stdout, r.stdout
    with safe_open(str(tmp / "out" / "head-fix.safetensors"), "pt") as f:
        assert sorted(json.loads((f.metadata() or {})["ckptlint_dropped"])) == ["fc.bias", "fc.weight"]


def test_api_result_says_what_was_written(work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    _, results, expected = work
    _ok(results["api"])
    result = json.loads(results["api"].stdout)
    assert set(result["tensors"]) == set(expected["sd"])
    assert result["strict"] is True


def test_api_refuses_a_hostile_file_with_an_exception_naming_the_global(
        work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    """ckptlint.convert(...) raises ckptlint.conversion.result.Refused (a ConvertError) naming os.system; with
    force=True it returns, having written the state_dict; the payload never ran (the fixture's marker)."""
    tmp, results, expected = work
    r = results["api-evil"]
    assert r.code == -1 and "Refused" in r.stderr and "system" in r.stderr.splitlines()[-1], r.stderr[-2000:]
    assert not (tmp / "out" / "api-evil.safetensors").exists()
    _ok(results["api-evil-force"])
    assert "system" in " ".join(json.loads(results["api-evil-force"].stdout)["dangerous"])
    assert_output_equals(tmp / "out" / "api-evil-force.safetensors", expected["sd"])


def test_model_apply_fix_in_process_matches(work: tuple[Path, dict[str, Converted], dict[str, Any]], cli: CliRunner,
                                             tmp_path: Path) -> None:
    """With a live ``--model`` (torch here), the same file as the snapshot gives."""
    tmp, _, expected = work
    dest = tmp_path / "model-fix.safetensors"
    r = cli("convert", tmp / "ddp.pt", dest, "--model", RESNET, "--apply-fix")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert_output_equals(dest, expected["sd"])
    assert load_file(str(dest)).keys() == load_file(str(tmp / "out" / "ddp-fix.safetensors")).keys()


def test_hostile_file_refused_naming_the_global_and_never_run(
        work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    tmp, results, expected = work
    r = results["evil"]
    assert r.code == 2, r.text
    assert "system" in r.stderr and "--force" in r.stderr, r.stderr
    assert not (tmp / "out" / "evil.safetensors").exists()
    _ok(results["evil-force"])
    assert "system" in results["evil-force"].text
    assert_output_equals(tmp / "out" / "evil-force.safetensors", expected["sd"])
    assert not expected["marker"].exists()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_sharded_checkpoint_to_one_file(fmt: str, work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    tmp, results, expected = work
    _ok(results[f"shards-{fmt}"])
    metadata = assert_output_equals(tmp / "out" / f"shards-{fmt}.safetensors", expected[f"shards-{fmt}"])
    assert any("tied.a" in k + v and "tied.b" in k + v for k, v in metadata.items()), metadata


def test_sharded_checkpoint_to_shards(work: tuple[Path, dict[str, Converted], dict[str, Any]]) -> None:
    tmp, results, expected = work
    _ok(results["reshard"])
    files = list((tmp / "resharded").glob("*.safetensors"))
    assert len(files) > 1, files
    got = _sharded_output(tmp / "resharded")
    want = expected["shards-zip"]
    assert set(got) == set(want)
    for k, t in want.items():
        assert got[k].dtype == t.dtype and got[k].shape == t.shape
        assert torch.equal(got[k].contiguous().view(-1).view(torch.uint8), t.contiguous().view(-1).view(torch.uint8))


# -- files the libraries save themselves -----------------------------------------------------------------------


def _save_pretrained_bin(model: Any, folder: Path) -> None:
    """A folder as transformers < 5 saved it: config.json + pytorch_model.bin (torch.save of the state_dict,
    tied keys sharing one storage). transformers 5 writes only safetensors, so the .bin is torch.save's."""
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def test_transformers_and_timm_files(tmp_path: Path) -> None:
    import timm
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_embd=8, n_layer=2, n_head=2, n_positions=16)
    gpt2 = transformers.GPT2LMHeadModel(config)
    hf = tmp_path / "gpt2"
    _save_pretrained_bin(gpt2, hf)
    bert_config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=16, max_position_embeddings=16)
    bert = transformers.BertForSequenceClassification(bert_config)
    bert_dir = tmp_path / "bert"
    _save_pretrained_bin(bert, bert_dir)
    timm_model = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    torch.save(timm_model.state_dict(), tmp_path / "timm.pth")
    jobs: list[list[str | Path]] = [
        ["convert", hf / "pytorch_model.bin", tmp_path / "gpt2.safetensors"],
        ["convert", bert_dir / "pytorch_model.bin", tmp_path / "bert.safetensors"],
        ["convert", tmp_path / "timm.pth", tmp_path / "timm.safetensors"],
    ]
    for r in convert_torchfree(jobs, tmp_path / "run"):
        _ok(r)
    for src, dest in ((hf / "pytorch_model.bin", "gpt2"), (bert_dir / "pytorch_model.bin", "bert"),
                      (tmp_path / "timm.pth", "timm")):
        assert_output_equals(tmp_path / f"{dest}.safetensors", dict(trusted_load(src)))
    # each library loads the converted file into its own class
    for model_dir, cls, original in ((hf, transformers.GPT2LMHeadModel, gpt2),
                                     (bert_dir, transformers.BertForSequenceClassification, bert)):
        name = "gpt2" if model_dir == hf else "bert"
        (model_dir / "pytorch_model.bin").unlink()
        os.replace(tmp_path / f"{name}.safetensors", model_dir / "model.safetensors")
        loaded, info = cls.from_pretrained(str(model_dir), output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        for (k, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
            assert torch.equal(a, b), k
    fresh = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    fresh.load_state_dict(load_file(str(tmp_path / "timm.safetensors")), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), timm_model.state_dict().values(),
                                                 strict=True))


def test_sharded_output_loads_with_from_pretrained(tmp_path: Path) -> None:
    """``--max-shard-size`` into a save_pretrained folder: transformers finds the index and the shards itself."""
    import transformers

    torch.manual_seed(1)
    config = transformers.GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=16)
    gpt2 = transformers.GPT2LMHeadModel(config)
    folder = tmp_path / "gpt2"
    _save_pretrained_bin(gpt2, folder)
    (r,) = convert_torchfree([["convert", folder / "pytorch_model.bin", folder / "model.safetensors",
                               "--max-shard-size", "8KB"]], tmp_path / "run")
    _ok(r)
    (folder / "pytorch_model.bin").unlink()
    assert len(list(folder.glob("model-*.safetensors"))) > 1
    assert _sharded_output(folder).keys() == gpt2.state_dict().keys()
    loaded, info = transformers.GPT2LMHeadModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for (k, a), b in zip(gpt2.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_the_converting_process_really_cannot_import_torch(work: tuple[Path, dict[str, Converted], dict[str, Any]],
                                                           tmp_path: Path) -> None:
    """The harness itself: a live --model target needs torch, so there it fails (one line, exit 2) and the
    harness reports the attempt — the other conversions above ran in the same kind of process without one."""
    tmp, _, _ = work
    with pytest.raises(AssertionError, match=r"tried to import.*torch"):
        convert_torchfree([["convert", tmp / "ddp.pt", tmp_path / "o.safetensors", "--model", RESNET]],
                          tmp_path / "run")
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers API
def test_peft_adapter_bin_converts_and_loads_with_peft(tmp_path: Path) -> None:
    """An adapter folder as peft < 0.6 saved it (adapter_model.bin): converted to adapter_model.safetensors,
    PeftModel.from_pretrained reads it and every LoRA weight equals the original's."""
    import peft
    import transformers

    torch.manual_seed(2)
    config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=16)
    lora = peft.get_peft_model(transformers.BertModel(config), peft.LoraConfig(
        r=2, target_modules=["query", "value"], init_lora_weights=False))
    folder = tmp_path / "adapter"
    lora.save_pretrained(folder)
    (folder / "adapter_model.safetensors").unlink()
    adapter = peft.get_peft_model_state_dict(lora)
    torch.save(adapter, folder / "adapter_model.bin")
    (r,) = convert_torchfree([["convert", folder / "adapter_model.bin", folder / "adapter_model.safetensors"]],
                             tmp_path / "run")
    _ok(r)
    assert_output_equals(folder / "adapter_model.safetensors", dict(trusted_load(folder / "adapter_model.bin")))
    (folder / "adapter_model.bin").unlink()
    torch.manual_seed(2)
    loaded = peft.PeftModel.from_pretrained(transformers.BertModel(config), str(folder))
    got = peft.get_peft_model_state_dict(loaded)
    assert got.keys() == adapter.keys()
    assert all(torch.equal(got[k], v) for k, v in adapter.items())


def test_legacy_layernorm_names_renamed_for_a_transformers_target(tmp_path: Path, cli: CliRunner) -> None:
    """An old BERT checkpoint (LayerNorm.gamma/beta), a snapshot of transformers:BertModel, ``--apply-fix`` in the
    torch-less process: the file has the names BertModel expects, the renames are recorded, strict loading works."""
    import transformers

    torch.manual_seed(3)
    config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=16)
    bert = transformers.BertModel(config)
    bert.save_pretrained(tmp_path / "bert")
    sd = bert.state_dict()
    renamed = {k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
               for k in sd}
    torch.save({renamed[k]: v for k, v in sd.items()}, tmp_path / "legacy.bin")
    r = cli("snapshot", "transformers:BertModel", "--model-kwargs", json.dumps({"config": str(tmp_path / "bert")}),
            "-o", tmp_path / "snap.json")
    assert r.returncode == 0, r.stderr
    (c,) = convert_torchfree([["convert", tmp_path / "legacy.bin", tmp_path / "out.safetensors", "--snapshot",
                               tmp_path / "snap.json", "--apply-fix"]], tmp_path / "run")
    _ok(c)
    metadata = assert_output_equals(tmp_path / "out.safetensors", dict(sd))
    assert json.loads(metadata["ckptlint_key_mapping"]) == {k: v for k, v in renamed.items() if k != v}
    result = transformers.BertModel(config).load_state_dict(load_file(str(tmp_path / "out.safetensors")), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("tied", [False, True])
def test_shards_split_as_huggingface_hub_splits(tied: bool, tmp_path: Path) -> None:
    """``--max-shard-size N``: the same files holding the same keys as huggingface_hub's
    ``split_torch_state_dict_into_shards(sd, max_shard_size=N)`` (what save_pretrained writes), for several N."""
    from huggingface_hub import split_torch_state_dict_into_shards

    g = torch.Generator().manual_seed(7)
    sd = {f"layer{i}.weight": torch.randn(int(torch.randint(1, 400, (1,), generator=g)), generator=g)
          for i in range(30)}
    if tied:
        sd["head.weight"] = sd["layer3.weight"]  # one storage under two keys
    torch.save(sd, tmp_path / "sd.pt")
    limits = (1_000, 3_000, 10_000, 10**9)
    jobs: list[list[str | Path]] = [["convert", tmp_path / "sd.pt", tmp_path / str(n) / "model.safetensors",
                                     "--max-shard-size", str(n)] for n in limits]
    for n in limits:
        (tmp_path / str(n)).mkdir()
    for n, r in zip(limits, convert_torchfree(jobs, tmp_path / "run"), strict=True):
        _ok(r)
        split = split_torch_state_dict_into_shards(sd, max_shard_size=n, filename_pattern="model{suffix}.safetensors")
        want = {f: sorted(keys) for f, keys in split.filename_to_tensors.items()}
        index = tmp_path / str(n) / "model.safetensors.index.json"
        got: dict[str, list[str]] = {}
        if index.exists():
            for key, f in json.loads(index.read_text())["weight_map"].items():
                got.setdefault(f, []).append(key)
        else:
            got = {"model.safetensors": list(load_file(str(tmp_path / str(n) / "model.safetensors")))}
        assert {f: sorted(keys) for f, keys in got.items()} == want, n
        assert set(_sharded_output(tmp_path / str(n)) if index.exists() else got["model.safetensors"]) == set(sd)


def test_pickled_torch_compile_module_converts_with_force(tmp_path: Path) -> None:
    """``torch.save(torch.compile(model))``: refused (it pickles torch._dynamo objects), and with --force its
    state_dict() (``_orig_mod.``-prefixed keys) bit for bit; nothing runs either way."""
    torch.manual_seed(4)
    compiled = torch.compile(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    torch.save(compiled, tmp_path / "compiled.pt")
    plain, forced = tmp_path / "plain.safetensors", tmp_path / "forced.safetensors"
    r_plain, r_forced = convert_torchfree([["convert", tmp_path / "compiled.pt", plain],
                                           ["convert", tmp_path / "compiled.pt", forced, "--force"]], tmp_path / "run")
    assert r_plain.code == 2 and "torch._dynamo" in r_plain.stderr and not plain.exists(), r_plain.text
    _ok(r_forced)
    expected = state_dict_of(trusted_load(tmp_path / "compiled.pt"))
    assert sorted(expected) == ["_orig_mod.0.bias", "_orig_mod.0.weight", "_orig_mod.2.bias", "_orig_mod.2.weight"]
    assert_output_equals(forced, expected)


def test_the_console_command_without_torch(work: tuple[Path, dict[str, Converted], dict[str, Any]],
                                           run_python: Any, tmp_path: Path) -> None:
    """``ckptlint convert`` as the console script runs it (console_main, its exit path), with torch unimportable:
    exit 0 and the file; a refusal is exit 2 with one line."""
    tmp, _, expected = work
    runner = ("import sys; sys.modules['torch'] = None; sys.argv[0] = 'ckptlint'; "
              "from ckptlint.cli import console_main; console_main()")
    ok = run_python("-c", runner, "convert", tmp / "ddp.pt", tmp_path / "ok.safetensors")
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr
    assert_output_equals(tmp_path / "ok.safetensors", {f"module.{k}": v for k, v in expected["sd"].items()})
    refused = run_python("-c", runner, "convert", tmp / "evil.pt", tmp_path / "evil.safetensors")
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
