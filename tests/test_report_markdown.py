"""The markdown report fits a GitHub comment (65,536 characters): clean files are counted and collapsed,
and a report that would be longer stops at the cap and says what it left out. The reports are built
from real checks of a few hand-written files, replicated under many paths (checking 1,000 files would
test the checker, not the report)."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from pathlib import Path

import pytest

import ckptlint
from ckptlint.plugin.manager import all_rules
from ckptlint.report.markdown import GITHUB_COMMENT_LIMIT, MAX_CHARS, render_markdown
from ckptlint.results import FileReport, Report

from conftest import CliRunner

EVIL = b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00xq\x00\x85R."


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(8)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FileReport]:
    d = tmp_path_factory.mktemp("md")
    (d / "clean.safetensors").write_bytes(_safetensors())
    (d / "evil.pkl").write_bytes(EVIL)
    (d / "notes.pt").write_text("not a checkpoint\n")
    report = ckptlint.check([d / "clean.safetensors", d / "evil.pkl", d / "notes.pt"])
    clean, evil, notes = report.files
    assert not clean.findings and clean.error is None
    assert any(f.code == "CK101" for f in evil.findings) and notes.error is not None
    return {"clean": clean, "evil": evil, "notes": notes}


def _copies(fr: FileReport, n: int, name: str) -> list[FileReport]:
    return [dataclasses.replace(fr, path=f"weights/{name}-{i:05d}-of-{n:05d}.safetensors") for i in range(n)]


def _comment_length(md: str) -> int:
    """GitHub counts characters; UTF-16 code units bound that from above (emoji take two)."""
    return max(len(md), len(md.encode("utf-16-le")) // 2)


def _outside_code_spans(md: str) -> str:
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", md)


def _well_formed(md: str) -> None:
    """Every ``<details>`` closed, every fenced block closed, counting only what is not inside a code span."""
    bare = _outside_code_spans(md)
    assert bare.count("<details>") == bare.count("</details>")
    assert bare.count("```") % 2 == 0


def test_a_thousand_clean_files_fit_a_comment(checked: dict[str, FileReport]) -> None:
    files = [checked["evil"], *_copies(checked["clean"], 1000, "model"), checked["notes"]]
    md = render_markdown(Report(files), {"rules": all_rules()})
    assert _comment_length(md) < GITHUB_COMMENT_LIMIT
    assert len(md) < 52_000  # collapsed: a name per clean file, no table row with five columns each
    assert "1002 files checked: 2 files with findings or unreadable, 1000 clean" in md
    assert "<details><summary>1000 clean files (no findings)</summary>" in md
    table = md[: md.index("<details><summary>1000 clean")]
    assert "model-00000" not in table  # clean files are not rows of the summary table
    assert f"`{checked['evil'].path}`" in table and "### `" in table  # what needs attention comes first
    assert md.count("- `weights/model-") == 1000  # each clean file is still named, once
    assert "Cut at" not in md
    _well_formed(md)


def test_a_report_too_long_is_cut_and_says_what_was_cut(checked: dict[str, FileReport]) -> None:
    evil = [dataclasses.replace(checked["evil"], path=f"weights/evil-{i:04d}.pkl") for i in range(600)]
    files = [*evil, *_copies(checked["clean"], 3000, "model")]
    md = render_markdown(Report(files), {"rules": all_rules()})
    assert _comment_length(md) < GITHUB_COMMENT_LIMIT and len(md) <= MAX_CHARS
    _well_formed(md)
    note = md.strip().splitlines()[-1]
    assert note.startswith(f"**Cut at {MAX_CHARS:,} characters**")
    m = re.search(r"(\d+) of (\d+) findings", note)
    assert m is not None
    total = sum(len(fr.findings) for fr in evil)
    assert int(m[2]) == total
    shown_rows = len(re.findall(r"^\| (?:CK\d{3}) \|", md, re.MULTILINE))
    assert int(m[1]) == total - shown_rows  # the note counts exactly what is missing
    assert "3000 clean file names" in note and "`ckptlint check --format json`" in note


def test_the_cap_is_an_option(checked: dict[str, FileReport]) -> None:
    files = [checked["evil"], checked["notes"], *_copies(checked["clean"], 50, "model")]
    full = render_markdown(Report(files), {})
    assert "Cut at" not in full and full.count("- `weights/model-") == 50
    small = render_markdown(Report(files), {"max_chars": 3000})
    assert len(small) <= 3000 and "**Cut at 3,000 characters**" in small
    _well_formed(small)


def test_cli_markdown_collapses_clean_files(tmp_path: Path, cli: CliRunner) -> None:
    for i in range(3):
        (tmp_path / f"clean{i}.safetensors").write_bytes(_safetensors())
    (tmp_path / "evil.pkl").write_bytes(EVIL)
    proc = cli("check", "--format", "markdown", "evil.pkl", "clean0.safetensors", "clean1.safetensors",
               "clean2.safetensors", cwd=tmp_path)
    md = proc.stdout
    assert proc.returncode == 1
    assert "<details><summary>3 clean files (no findings)</summary>" in md
    assert "- `clean1.safetensors`\n" in md
    assert "| ✅ |" not in md and "### `evil.pkl`" in md


def test_strings_from_the_file_cannot_break_the_comment(tmp_path: Path) -> None:
    key = "</details>\n```\n<img src=x onerror=alert(1)>|`k`"
    kb = key.encode()
    payload = (b"\x80\x02}X" + len(kb).to_bytes(4, "little") + kb
               + b"cposix\nsystem\nX\x01\x00\x00\x00x\x85Rs.")
    path = tmp_path / "a `b` <details>.pkl"
    path.write_bytes(payload)
    report = ckptlint.check([path])
    assert any(f.key == key for f in report.files[0].findings)
    md = render_markdown(report, {})
    _well_formed(md)
    span = "`` </details> ``` <img src=x onerror=alert(1)>\\|`k` ``"
    assert span in md  # the key, whole, in one code span
    assert "### ``" + str(path) + "``" in md
    bare = _outside_code_spans(md)
    assert "<img" not in bare and "<details>" not in bare and "</details>" not in bare
