"""``ckptlint convert`` on the command line: what it prints, its exit codes and one-line errors, and the
``check`` advice that points at it. Torch-free checkpoints (tests/_convert_files.py), in-process CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _convert_files import (
    LINEAR,
    OD,
    Obj,
    P,
    call,
    expected_bytes,
    module,
    read_safetensors,
    tensor,
    tensor_bytes,
    torch_zip,
)

from conftest import CliResult, CliRunner

W = tensor("0", [1.0, 2.0, 3.0, 4.0], (2, 2))


@pytest.fixture(autouse=True)
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converting never imports torch (nor a library that would): here ``import torch`` raises ImportError."""
    for name in ("torch", "torchvision", "transformers", "numpy", "safetensors"):
        monkeypatch.setitem(sys.modules, name, None)


def one_error(r: CliResult) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    (line,) = r.stderr.splitlines()
    assert line.startswith("ckptlint: ") and "Traceback" not in r.stderr, line
    return line


def test_a_conversion_says_what_it_wrote_and_left_out(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "train.pt", {"model": OD({"w": W, "tied": W}), "epoch": 3,
                                      "args": Obj("argparse", "Namespace", {"lr": 0.1})})
    r = cli("convert", "train.pt", "out.safetensors", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r
    lines = r.stdout.splitlines()
    assert lines[0] == ("train.pt -> out.safetensors: 2 tensors, 32 bytes (state_dict at model, well-known key)")
    assert "  left out, not tensors (2): epoch (int), args (argparse.Namespace)" in lines
    assert "  tied keys (each written, recorded in __metadata__): tied = w" in lines
    assert tensor_bytes(tmp_path / "out.safetensors", "tied") == expected_bytes(W)


def test_json_output_is_the_result(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "a.pt", OD({"w": W}))
    r = cli("convert", "a.pt", "a.safetensors", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["tensors"] == ["w"] and doc["files"] == ["a.safetensors"] and doc["index"] is None
    assert doc["metadata"] == read_safetensors(tmp_path / "a.safetensors")[0]["__metadata__"]


def test_an_existing_destination_is_refused_unless_overwrite(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "a.pt", OD({"w": W}))
    (tmp_path / "a.safetensors").write_bytes(b"mine")
    line = one_error(cli("convert", "a.pt", "a.safetensors", cwd=tmp_path))
    assert line == "ckptlint: a.safetensors: cannot write: exists (use --overwrite to replace it)"
    assert (tmp_path / "a.safetensors").read_bytes() == b"mine"
    assert cli("convert", "a.pt", "a.safetensors", "--overwrite", cwd=tmp_path).returncode == 0
    assert tensor_bytes(tmp_path / "a.safetensors", "w") == expected_bytes(W)


def test_a_hostile_file_is_refused_naming_its_globals_and_force_converts_it(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "evil.pt", {"w": W, "x": call("os", "system", "true"),
                                     "y": call("subprocess", "getoutput", "true")})
    line = one_error(cli("convert", "evil.pt", "evil.safetensors", cwd=tmp_path))
    assert "refused: it references dangerous globals (os.system, subprocess.getoutput)" in line, line
    assert "--force" in line and not (tmp_path / "evil.safetensors").exists()
    r = cli("convert", "evil.pt", "evil.safetensors", "--force", cwd=tmp_path)
    assert r.returncode == 0, r
    assert "  forced: the source references dangerous globals (os.system, subprocess.getoutput); none of them ran" \
        in r.stdout.splitlines()


def test_unsupported_tensors_fail_by_name_or_are_skipped_and_listed(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "q.pt", OD({"w": W, "q": tensor("1", [1, 2], (2,), "qint8")}))
    line = one_error(cli("convert", "q.pt", "q.safetensors", cwd=tmp_path))
    assert "1 tensor safetensors cannot hold: q (dtype qint8" in line and "--skip-unsupported" in line, line
    r = cli("convert", "q.pt", "q.safetensors", "--skip-unsupported", cwd=tmp_path)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert any(x.startswith("  skipped, safetensors cannot hold them (1): q (dtype qint8") for x in lines), lines
    assert list(read_safetensors(tmp_path / "q.safetensors")[0]) == ["__metadata__", "w"]


def test_usage_errors_are_one_line(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "a.pt", OD({"w": W}))
    assert "--apply-fix needs a target" in one_error(cli("convert", "a.pt", "b.safetensors", "--apply-fix",
                                                         cwd=tmp_path))
    assert "--max-shard-size '5XB': not a size" in one_error(cli("convert", "a.pt", "b.safetensors",
                                                                 "--max-shard-size", "5XB", cwd=tmp_path))
    assert "--model-kwargs and --model-config need --model" in one_error(
        cli("convert", "a.pt", "b.safetensors", "--model-kwargs", "{}", cwd=tmp_path))
    assert "no such directory" in one_error(cli("convert", "a.pt", "nowhere/b.safetensors", cwd=tmp_path))
    assert "the following arguments are required: DEST" in one_error(cli("convert", "a.pt", cwd=tmp_path))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert one_error(cli("convert", "junk.pt", "b.safetensors", cwd=tmp_path)).startswith("ckptlint: junk.pt: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "junk.pt"]


def test_shards_on_the_command_line(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "a.pt", OD({"a": tensor("1", [1.0] * 4), "b": tensor("2", [2.0] * 4)}))
    r = cli("convert", "a.pt", "model.safetensors", "--max-shard-size", "16", cwd=tmp_path)
    assert r.returncode == 0, r
    assert r.stdout.startswith("a.pt -> 2 shards + model.safetensors.index.json: 2 tensors, 32 bytes")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}


def _snapshot(path: Path) -> Path:
    """A target with ``fc.weight`` [2, 2] and ``fc.bias`` [2] (what ``ckptlint snapshot`` writes for it)."""
    def mod(prefix: str, local: dict[str, list[int]], children: list[str]) -> dict[str, object]:
        return {"prefix": prefix, "cls": "netmod.Net", "version": None, "children": children, "none_children": [],
                "local": {k: {"shape": s, "dtype": "float32", "kind": "parameter"} for k, s in local.items()},
                "extra_state": False, "load_rule": None, "unversioned_error": None}
    path.write_text(json.dumps({"snapshot_version": 1, "target": "netmod:Net", "kwargs": {}, "torch_version": "2.4",
                                "built_on": "meta", "notes": [], "shared": {},
                                "modules": [mod("", {}, ["fc"]), mod("fc", {"weight": [2, 2], "bias": [2]}, [])]}))
    return path


def test_apply_fix_writes_the_keys_the_target_expects(tmp_path: Path, cli: CliRunner) -> None:
    bias = tensor("1", [5.0, 6.0])
    torch_zip(tmp_path / "ddp.pt", OD({"module.fc.weight": W, "module.fc.bias": bias,
                                       "module.extra": tensor("2", [0.0])}))
    snap = _snapshot(tmp_path / "snap.json")
    r = cli("convert", "ddp.pt", "plain.safetensors", "--snapshot", snap, cwd=tmp_path)
    assert r.returncode == 0, r
    assert "  netmod:Net refuses it with load_state_dict(strict=True): 2 missing, 3 unexpected" in r.stdout, r.stdout
    assert set(read_safetensors(tmp_path / "plain.safetensors")[0]) == {"__metadata__", "module.fc.weight",
                                                                         "module.fc.bias", "module.extra"}
    r = cli("convert", "ddp.pt", "fixed.safetensors", "--snapshot", snap, "--apply-fix", "--format", "json",
            cwd=tmp_path)
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["tensors"] == ["fc.weight", "fc.bias"] and doc["strict"] is True and doc["random_init"] == []
    assert doc["mapping"] == {"fc.weight": "module.fc.weight", "fc.bias": "module.fc.bias"}
    assert doc["dropped"] == ["module.extra"]
    header, _ = read_safetensors(tmp_path / "fixed.safetensors")
    assert json.loads(header["__metadata__"]["ckptlint_key_mapping"]) == doc["mapping"]
    assert json.loads(header["__metadata__"]["ckptlint_dropped"]) == ["module.extra"]
    assert tensor_bytes(tmp_path / "fixed.safetensors", "fc.bias") == expected_bytes(bias)


def test_check_advice_points_at_convert(tmp_path: Path, cli: CliRunner) -> None:
    torch_zip(tmp_path / "full.pt", module(LINEAR, {"weight": P(W), "bias": None}))
    torch_zip(tmp_path / "ns.pt", {"state_dict": OD({"w": W}), "args": Obj("argparse", "Namespace", {"lr": 0.1})})
    r = cli("check", "full.pt", "ns.pt", "--format", "json", "--isolated", cwd=tmp_path)
    doc = json.loads(r.stdout)
    fixes = {(fr["path"], f["code"]): f.get("fix") or "" for fr in doc["files"] for f in fr["findings"]}
    assert "ckptlint convert FILE OUT.safetensors writes its state_dict() tensors" in fixes[("full.pt", "CK102")]
    messages = {(fr["path"], f["code"]): f["message"] for fr in doc["files"] for f in fr["findings"]}
    assert "to keep only its tensors, without loading it: ckptlint convert" in messages[("ns.pt", "CK104")]
    assert "convert" not in fixes[("ns.pt", "CK104")]  # the fix stays one executable line of code
    for path in ("full.pt", "ns.pt"):  # and the advice is true: both convert
        assert cli("convert", path, f"{path}.safetensors", cwd=tmp_path).returncode == 0


def test_every_flag_option_and_result_field_is_documented() -> None:
    import argparse
    import dataclasses
    import inspect

    from ckptlint.cli import build_parser
    from ckptlint.conversion.api import convert
    from ckptlint.conversion.result import ConvertResult

    docs = Path(__file__).resolve().parents[1] / "docs"
    page, api = (docs / "convert.md").read_text(encoding="utf-8"), (docs / "api.md").read_text(encoding="utf-8")
    (sub,) = (a for a in build_parser("convert")._actions if isinstance(a, argparse._SubParsersAction))
    flags = [a.option_strings[-1] for a in sub.choices["convert"]._actions
             if a.option_strings and a.option_strings[-1] != "--help"]
    assert len(flags) >= 12 and [f for f in flags if f"`{f}" not in page] == []
    options = [p for p in inspect.signature(convert).parameters if p not in ("src", "dest")]
    assert [p for p in options if f"`{p}`" not in api and f"{p}:" not in api] == []
    fields = [f.name for f in dataclasses.fields(ConvertResult)]
    assert [f for f in fields if f"`{f}`" not in api] == []


def test_drop_tied_says_strict_loading_calls_the_tied_keys_missing(tmp_path: Path, cli: CliRunner) -> None:
    snap = json.loads(_snapshot(tmp_path / "snap.json").read_text())
    snap["modules"][1]["local"]["bias"]["shape"] = [2, 2]  # a target whose fc.bias is tied to fc.weight
    (tmp_path / "snap.json").write_text(json.dumps(snap))
    torch_zip(tmp_path / "t.pt", OD({"fc.weight": W, "fc.bias": W}))  # fc.bias: W's tensor again (tied)
    r = cli("convert", "t.pt", "all.safetensors", "--snapshot", "snap.json", cwd=tmp_path)
    assert r.returncode == 0 and "  loads into netmod:Net with load_state_dict(strict=True)" in r.stdout, r
    r = cli("convert", "t.pt", "t.safetensors", "--snapshot", "snap.json", "--drop-tied", cwd=tmp_path)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[1:] == ["  tied keys (written once, recorded in __metadata__): fc.bias = fc.weight",
                         "  loads into netmod:Net only with load_state_dict(strict=False)",
                         ("  1 tied key(s) left out (--drop-tied): strict=True calls them missing; the model's own tie "
                         "fills them")], lines
