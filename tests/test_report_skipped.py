"""Files a folder walk passed over as not checkpoints (``Report.skipped``) are listed in the machine reports too,
not only as stderr notes: JSON gains an optional ``skipped`` array (contract version 1, schema-checked), SARIF a
``note`` notification per file, markdown a collapsed section. A report without skips is unchanged."""

from __future__ import annotations

import json
import os
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import CliRunner

SARIF_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())
REPORT_SCHEMA = json.loads(resources.files("ckptlint").joinpath("schemas").joinpath("report.schema.json").read_text())
FIRMWARE = b"\x7fFW\x00\x01\x02" + bytes(range(256)) * 4


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.pt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    (tmp_path / "w" / "firmware.bin").write_bytes(FIRMWARE)
    monkeypatch.chdir(tmp_path)
    return "w"


def _check(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli("check", *args)
    return result.returncode, result.stdout, result.stderr


def test_json_lists_skipped_files(folder: str, cli: CliRunner) -> None:
    rc, out, err = _check(cli, folder, "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(doc)
    assert [f["path"] for f in doc["files"]] == [os.path.join("w", "model.pt")]
    (entry,) = doc["skipped"]
    assert entry["path"] == os.path.join("w", "firmware.bin")
    assert entry["format"] == "unknown"
    assert "not a checkpoint" in entry["reason"]
    assert f"ckptlint: {entry['path']}: skipped: {entry['reason']}" in err.splitlines()


def test_json_without_skips_has_no_skipped_key(folder: str, cli: CliRunner) -> None:
    os.remove(os.path.join(folder, "firmware.bin"))
    rc, out, _ = _check(cli, folder, "--format", "json")
    assert rc == 0
    assert set(json.loads(out)) == {"version", "files"}


def test_the_schema_refuses_a_skipped_entry_without_reason() -> None:
    doc: dict[str, Any] = {"version": 1, "files": [], "skipped": [{"path": "a.bin", "format": "unknown"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(doc)


def test_sarif_has_a_note_per_skipped_file(folder: str, cli: CliRunner) -> None:
    rc, out, _ = _check(cli, folder, "--format", "sarif")
    assert rc == 0
    log = json.loads(out)
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    (run,) = log["runs"]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    (note,) = [n for n in notes if n["level"] == "note"]
    assert note["message"]["text"].startswith(os.path.join("w", "firmware.bin") + ": skipped: ")
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("w/firmware.bin")
    assert run["invocations"][0]["executionSuccessful"] is True
    assert all("firmware" not in r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
               for r in run["results"])  # a skipped file is no result


def test_markdown_lists_skipped_files_collapsed(folder: str, cli: CliRunner) -> None:
    rc, out, _ = _check(cli, folder, "--format", "markdown")
    assert rc == 0
    assert "<details><summary>1 file skipped (found in a folder, not checkpoints)</summary>" in out
    section = out.split("1 file skipped", 1)[1]
    assert "`w/firmware.bin`: " in section and "not a checkpoint" in section
    assert section.rstrip().endswith("</details>")
