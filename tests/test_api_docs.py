"""The documented API exists: every ``Report.x`` / ``FileReport.x`` / ``Finding.x`` / ``Verdict.x`` and
``ckptlint.x`` the docs and README cite is real, and docs/api.md documents every option of ``check``."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
from pathlib import Path

import ckptlint
from ckptlint import FileReport, Finding, Report, Verdict

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FILE_NAMES = {"toml", "sarif"}
"""``ckptlint.toml``, ``ckptlint.sarif``: files the docs name, not the API."""
TYPES = {"Report": Report, "FileReport": FileReport, "Finding": Finding, "Verdict": Verdict}


def _has(cls: type, name: str) -> bool:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return name in fields or hasattr(cls, name)


def test_cited_attributes_exist() -> None:
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"\b(Report|FileReport|Finding|Verdict)\.([A-Za-z_]\w*)", text):
            if not _has(TYPES[m.group(1)], m.group(2)):
                missing.append(f"{page.name}: {m.group(0)}")
        for m in re.finditer(r"(?<![\w.])ckptlint\.([A-Za-z_]\w*)", text):
            name = m.group(1)
            if name in FILE_NAMES:
                continue
            if not hasattr(ckptlint, name) and importlib.util.find_spec(f"ckptlint.{name}") is None:
                missing.append(f"{page.name}: {m.group(0)}")
        missing += [f"{page.name}: report.verdict" for _ in re.finditer(r"\breport\.verdict\b", text)]
    assert missing == []


def test_api_page_documents_every_option_and_export() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    options = [p for p in inspect.signature(ckptlint.check).parameters if p != "paths"]
    assert [p for p in options if f"`{p}`" not in text] == []
    assert [n for n in ("Report", "FileReport", "Finding", "Verdict", "CheckInput") if f"`{n}`" not in text] == []
