"""A rule's identity and documentation; findings are made through their rule."""

from __future__ import annotations

import re

from .findings import Finding
from .record import record
from .vocab import RuleCategory, Severity

CODE_PATTERN = r"^[A-Z]{1,3}[0-9]{3}$"


def is_code(code: str) -> bool:
    """``re.match(CODE_PATTERN, code)``, without compiling it at import (every check asks, startup)."""
    if type(code) is not str:
        return re.match(CODE_PATTERN, code) is not None  # re's answer, or its TypeError
    if code.endswith("\n"):  # ``$`` also matches before a final newline
        code = code[:-1]
    letters, digits = code[:-3], code[-3:]
    return (0 < len(letters) <= 3 and letters.isascii() and letters.isalpha() and letters.isupper()
            and len(digits) == 3 and digits.isascii() and digits.isdigit())

_CATEGORY_BY_DIGIT: dict[str, RuleCategory] = {
    "1": "safety", "2": "compatibility", "3": "device", "4": "hygiene", "9": "input"}


@record
class Rule:
    """A rule's identity: code, name, default severity and summary; makes its findings."""

    code: str
    name: str
    severity: Severity
    """Default severity: ``error``, ``warning`` or ``info``."""
    summary: str
    """One line: what it checks."""
    doc: str = ""
    """Markdown: what it does, why it matters, an example, the fix (``ckptlint rules CODE``)."""
    plugin: str = ""
    """Which plugin declared it (filled in by the plugin manager)."""

    @property
    def category(self) -> RuleCategory:
        if not self.code.startswith("CK"):
            return "plugin"
        return _CATEGORY_BY_DIGIT.get(self.code[2:3], "plugin")

    def finding(self, message: str, *, key: str | None = None, location: str | None = None,
                fix: str | None = None, severity: Severity | None = None) -> Finding:
        """A finding of this rule: its code, and its default severity unless ``severity`` says otherwise."""
        return Finding(code=self.code, severity=severity or self.severity, message=message, key=key,
                       location=location, fix=fix)
