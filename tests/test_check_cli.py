"""`ckptlint check` end to end: exit codes, the JSON contract, trusted globals, --fail-on."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import CliRunner


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("check")
    out = {
        "clean": d / "clean.pt",
        "namespace": d / "namespace.pt",
        "full": d / "full.pt",
        "proto4": d / "proto4.pt",
    }
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    torch.save(model.state_dict(), out["clean"])
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, out["namespace"])
    torch.save(model, out["full"])
    torch.save(model.state_dict(), out["proto4"], pickle_protocol=4)
    return out


def _loads(torch: ModuleType, path: Path) -> bool:
    try:
        torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - torch's verdict, whatever it raises
        return False
    return True


def test_json_contract(files: dict[str, Path], cli: CliRunner, torch: ModuleType) -> None:
    proc = cli("check", "--format", "json", *map(str, files.values()))
    assert proc.returncode == 1  # the full-model pickle is an error
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1
    assert [f["path"] for f in doc["files"]] == [str(p) for p in files.values()]
    for entry, path in zip(doc["files"], files.values(), strict=True):
        assert set(entry) >= {"path", "format", "error", "findings", "globals", "weights_only", "compat"}
        assert entry["error"] is None and entry["compat"] is None
        assert entry["weights_only"]["loads"] == _loads(torch, path)
        for g in entry["globals"]:
            assert g["category"] in ("allowed", "data", "model", "dangerous", "unknown")
        for f in entry["findings"]:
            assert set(f) >= {"code", "severity", "message", "key", "location", "fix"}
    by_name = dict(zip(files, doc["files"], strict=True))
    assert by_name["clean"]["findings"] == []
    full_codes = [f["code"] for f in by_name["full"]["findings"]]
    # one finding per cause: the model classes are CK102's; CK105 would only repeat them
    assert "CK102" in full_codes and "CK105" not in full_codes, full_codes
    assert by_name["full"]["weights_only"]["loads"] is False
    assert by_name["proto4"]["weights_only"]["blocking"][0]["kind"] == "opcode"


def test_exit_codes_and_fail_on(files: dict[str, Path], cli: CliRunner) -> None:
    assert cli("check", str(files["clean"])).returncode == 0
    assert cli("check", str(files["namespace"])).returncode == 0  # warnings only
    assert cli("check", "--fail-on", "warning", str(files["namespace"])).returncode == 1
    assert cli("check", str(files["full"])).returncode == 1


def test_allow_global_trusts_a_class(files: dict[str, Path], cli: CliRunner, torch: ModuleType) -> None:
    proc = cli("check", "--format", "json", "--allow-global", "argparse.Namespace", str(files["namespace"]))
    entry = json.loads(proc.stdout)["files"][0]
    assert entry["findings"] == []
    assert entry["weights_only"]["loads"] is True
    with torch.serialization.safe_globals([argparse.Namespace]):
        torch.load(files["namespace"], weights_only=True)  # what the verdict assumed


def test_unreadable_file_is_one_line(tmp_path: Path, files: dict[str, Path], cli: CliRunner) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint\n")
    proc = cli("check", str(files["clean"]), str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ckptlint: {bad}: a text file, not a checkpoint"]
    assert "Traceback" not in proc.stderr
    assert str(files["clean"]) in proc.stdout


def test_text_output_shows_fix(files: dict[str, Path], cli: CliRunner) -> None:
    proc = cli("check", str(files["namespace"]))
    assert "CK104" in proc.stdout and "argparse.Namespace" in proc.stdout
    assert 'torch.serialization.add_safe_globals([(argparse.Namespace, "argparse.Namespace")])' in proc.stdout


def test_check_imports_no_torch(files: dict[str, Path], run_python: Any) -> None:
    code = ("import sys, ckptlint.cli; rc = ckptlint.cli.main(['check', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('rc', rc)")
    proc = run_python("-c", code, files["full"])
    assert proc.returncode == 0, proc.stderr
    assert "rc 1" in proc.stdout


def test_skip_site_pth_skips_only_real_site_files(tmp_path: Path, cli: CliRunner) -> None:
    site = tmp_path / "distutils-precedence.pth"
    site.write_text("/usr/lib/python3/dist-packages\nimport os\n")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"cposix\nsystem\n(Vtouch x\ntR.")  # a protocol-0 pickle is text too
    proc = cli("check", "--skip-site-pth", str(site), str(evil))
    assert proc.returncode == 1
    assert "CK101" in proc.stdout
    assert f"{site}: skipped" in proc.stderr
    assert cli("check", "--skip-site-pth", str(site)).returncode == 0
    assert cli("check", str(site)).returncode == 2  # without the flag it is not a checkpoint


def test_report_assertions(files: dict[str, Path], torch: ModuleType) -> None:
    import ckptlint

    ckptlint.check(files["clean"]).assert_safe()
    with pytest.raises(AssertionError, match="CK102"):
        ckptlint.check(files["full"]).assert_safe()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ckptlint.check(files["clean"], model=model).assert_compatible()
    bigger = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(AssertionError, match=r"0\.weight"):
        ckptlint.check(files["clean"], model=bigger).assert_compatible()
    ckptlint.check(files["clean"], model=bigger).assert_compatible(allow_mismatch=["0.*", "1.*"])
