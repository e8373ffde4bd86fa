"""CK9xx: input that could not be checked. The checker reports these; this module declares them."""

from __future__ import annotations

from ..findings import Finding
from ..plugin import hookimpl
from ..rule import Rule
from ..vocab import NOT_A_CHECKPOINT

UNREADABLE = Rule("CK901", "unreadable-file", "error", "the file could not be read as a checkpoint")
NOT_CHECKPOINT = Rule("CK902", "not-a-checkpoint", "error",
                      "the file is not a checkpoint (empty, text, a .pth path file …)")
RULES = [UNREADABLE, NOT_CHECKPOINT]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


def input_finding(reason: str, kind: str | None) -> Finding:
    """CK902 when the reader recognised something that is no checkpoint at all, else CK901."""
    return (NOT_CHECKPOINT if kind in NOT_A_CHECKPOINT else UNREADABLE).finding(reason)
