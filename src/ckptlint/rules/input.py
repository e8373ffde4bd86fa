"""CK9xx: input that could not be checked. The checker reports these; rules declare them."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..rule import Rule

RULES = [
    Rule("CK901", "unreadable-file", "error", "the file could not be read as a checkpoint"),
    Rule("CK902", "not-a-checkpoint", "error", "the file is not a checkpoint (empty, text, a .pth path file …)"),
]



@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES
