"""Configuration policy on real checkpoints: selection, severities, per-file ignores, baseline, switches."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ckptlint.selection import is_selected

from conftest import CliRunner

Check = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def check(cli: CliRunner) -> Check:
    """``check(*args, cwd=proj)`` -> (exit code, JSON report) of ``ckptlint check --format json``."""
    def run(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
        proc = cli("check", "--format", "json", *args, cwd=cwd)
        return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {})
    return run


def _codes(doc: dict[str, Any], i: int = 0) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in doc["files"][i]["findings"]}


@pytest.fixture
def proj(tmp_path: Path, torch: ModuleType) -> Path:
    (tmp_path / "weights").mkdir()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "weights" / "ns.pt")
    torch.save(model.state_dict(), tmp_path / "weights" / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(model, tmp_path / "weights" / "full.pt")
    torch.save({"w": torch.ones(3, dtype=torch.float64)}, tmp_path / "weights" / "f64.pt")
    big = torch.zeros(1 << 19)
    torch.save({"head": big[:10]}, tmp_path / "weights" / "bloat.pt")
    return tmp_path


def _config(proj: Path, body: str) -> None:
    (proj / "pyproject.toml").write_text("[tool.ckptlint]\n" + body)


@pytest.mark.parametrize("code,select,ignore,selected", [
    ("CK104", [""], [], True),
    ("CK104", ["CK1"], ["CK104"], False),
    ("CK104", ["CK104"], ["CK1"], True),
    ("CK104", ["CK1"], ["CK1"], False),
    ("CK201", ["CK1"], [], False),
])
def test_longest_prefix_wins(code: str, select: list[str], ignore: list[str], selected: bool) -> None:
    assert is_selected(code, select, ignore) is selected


def test_defaults_without_config(proj: Path, check: Check) -> None:
    rc, doc = check("weights/ns.pt", "weights/f64.pt", "weights/bloat.pt", cwd=proj)
    assert rc == 0  # warnings only
    assert _codes(doc, 0) == {"CK104": "warning", "CK105": "warning"}
    assert _codes(doc, 1) == {"CK403": "warning"}
    assert _codes(doc, 2) == {"CK401": "warning"}


def test_select_ignore_and_cli_precedence(proj: Path, check: Check) -> None:
    _config(proj, 'ignore = ["CK105"]\n')
    _, doc = check("weights/ns.pt", cwd=proj)
    assert set(_codes(doc)) == {"CK104"}
    _, doc = check("--ignore", "CK104", "weights/ns.pt", cwd=proj)  # the CLI replaces the config's ignore
    assert set(_codes(doc)) == {"CK105"}
    _, doc = check("--select", "CK105", "weights/ns.pt", cwd=proj)
    assert set(_codes(doc)) == set()  # config still ignores CK105 at equal length: ignore wins
    _config(proj, 'select = ["CK2"]\nextend-select = ["CK104"]\n')
    _, doc = check("weights/ns.pt", cwd=proj)
    assert set(_codes(doc)) == {"CK104"}


def test_severity_overrides_change_exit_code(proj: Path, check: Check) -> None:
    rc, _ = check("weights/ns.pt", cwd=proj)
    assert rc == 0
    _config(proj, '[tool.ckptlint.severity]\nCK104 = "error"\nCK105 = "info"\n')
    rc, doc = check("weights/ns.pt", cwd=proj)
    assert rc == 1
    assert _codes(doc) == {"CK104": "error", "CK105": "info"}


def test_per_file_ignores(proj: Path, check: Check) -> None:
    _config(proj, '[tool.ckptlint.per-file-ignores]\n"weights/ns*.pt" = ["CK10"]\n')
    _, doc = check("weights/ns.pt", "weights/f64.pt", cwd=proj)
    assert _codes(doc, 0) == {}
    assert _codes(doc, 1) == {"CK403": "warning"}


def test_baseline_round_trip(proj: Path, check: Check, cli: CliRunner) -> None:
    rc, doc = check("weights/full.pt", "weights/ns.pt", cwd=proj)
    assert rc == 1 and "CK102" in _codes(doc, 0)
    proc = cli("check", "--write-baseline", "baseline.json", "weights/full.pt", "weights/ns.pt", cwd=proj)
    assert proc.returncode == 0
    baseline = json.loads((proj / "baseline.json").read_text())
    assert {(e["path"], e["code"]) for e in baseline["findings"]} >= {("weights/full.pt", "CK102"),
                                                                       ("weights/ns.pt", "CK104")}
    rc, doc = check("--baseline", "baseline.json", "weights/full.pt", "weights/ns.pt", cwd=proj)
    assert rc == 0 and all(not f["findings"] for f in doc["files"])
    # a new finding still fails: a payload file is not in the baseline
    (proj / "weights" / "evil.pkl").write_bytes(b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00xq\x00\x85R.")
    rc, doc = check("--baseline", "baseline.json", "weights/full.pt", "weights/evil.pkl", cwd=proj)
    assert rc == 1 and _codes(doc, 1).get("CK101") == "error" and not _codes(doc, 0)
    _config(proj, 'baseline = "baseline.json"\n')  # the same from the config
    rc, _ = check("weights/full.pt", "weights/ns.pt", cwd=proj)
    assert rc == 0


def test_trusted_globals(proj: Path, check: Check) -> None:
    _config(proj, 'trusted-globals = ["argparse.Namespace"]\n')
    rc, doc = check("weights/ns.pt", cwd=proj)
    assert rc == 0 and _codes(doc) == {} and doc["files"][0]["weights_only"]["loads"] is True


def test_policy_switches(proj: Path, check: Check, torch: ModuleType) -> None:
    files = ("weights/ns.pt", "weights/legacy.pt", "weights/full.pt")
    _config(proj, "require-weights-only = true\nforbid-legacy-format = true\nrequire-safetensors = true\n"
                  "forbid-full-model-pickles = false\nmax-file-size = 1000\n")
    rc, doc = check(*files, cwd=proj)
    assert rc == 1
    ns, legacy, full = (_codes(doc, i) for i in range(3))
    assert {"CK110", "CK112", "CK406"} <= set(ns) and "CK111" not in ns
    assert {"CK111", "CK112", "CK406"} <= set(legacy) and "CK110" not in legacy  # legacy state_dicts load
    assert "CK102" not in full and "CK110" in full
    st = proj / "weights" / "w.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, st)
    _, doc = check(str(st), cwd=proj)
    assert set(_codes(doc)) == set()


def test_release_files_training_state(proj: Path, check: Check, torch: ModuleType) -> None:
    (proj / "release").mkdir()
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    for where in ("release", "weights"):
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, proj / where / "ckpt.pt")
    _config(proj, 'release-files = ["release/*.pt"]\n')
    _, doc = check("release/ckpt.pt", "weights/ckpt.pt", cwd=proj)
    assert "CK402" in _codes(doc, 0) and "CK402" not in _codes(doc, 1)


def test_unreadable_and_not_a_checkpoint_findings(proj: Path, check: Check) -> None:
    (proj / "weights" / "notes.pt").write_text("hello\n")
    (proj / "weights" / "cut.pt").write_bytes((proj / "weights" / "ns.pt").read_bytes()[:100])
    rc, doc = check("weights/notes.pt", "weights/cut.pt", cwd=proj)
    assert rc == 2
    assert _codes(doc, 0) == {"CK902": "error"} and _codes(doc, 1) == {"CK901": "error"}
    assert doc["files"][0]["error"] and doc["files"][1]["error"]


def test_hygiene_meta_empty_and_aliased(tmp_path: Path, check: Check, torch: ModuleType) -> None:
    w = torch.ones(4, 4)
    torch.save({"emb.weight": w, "head.weight": w, "fc.weight": torch.empty(3, 2, device="meta"),
                "empty": torch.zeros(0, 5)}, tmp_path / "h.pt")
    _, doc = check("h.pt", cwd=tmp_path)
    by_code: dict[str, list[dict[str, Any]]] = {}
    for f in doc["files"][0]["findings"]:
        by_code.setdefault(f["code"], []).append(f)
    meta, empty = sorted(by_code["CK404"], key=lambda f: f["severity"] != "warning")
    assert meta["severity"] == "warning" and meta["key"] == "fc.weight"
    assert empty["severity"] == "info" and empty["key"] == "empty"
    (alias,) = by_code["CK405"]
    assert "emb.weight" in alias["message"] and "head.weight" in alias["message"]
    loaded = torch.load(tmp_path / "h.pt", weights_only=True)  # torch agrees: one storage, a meta tensor
    assert loaded["emb.weight"].untyped_storage().data_ptr() == loaded["head.weight"].untyped_storage().data_ptr()
    assert loaded["fc.weight"].is_meta
