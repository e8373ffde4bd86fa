"""A rule's identity and documentation; findings refer to rules by code."""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_RE = re.compile(r"^[A-Z]{1,3}[0-9]{3}$")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    """Default severity: ``error``, ``warning`` or ``info``."""
    summary: str
    """One line: what it checks."""
    doc: str = ""
    """Markdown: what it does, why it matters, an example, the fix (``ckptlint rules CODE``)."""
    plugin: str = ""
    """Which plugin declared it (filled in by the plugin manager)."""

    @property
    def category(self) -> str:
        return {"1": "safety", "2": "compatibility", "3": "device", "4": "hygiene", "9": "input"}.get(
            self.code[2:3], "plugin") if self.code.startswith("CK") else "plugin"
