"""Everything a ckptlint plugin author needs, from one import (in the style of tox 4's ``tox.plugin``)::

    from ckptlint.plugin import FileContext, Finding, Rule, hookimpl

    DEBUG = Rule("EX001", "debug-tensor", "warning", "a tensor whose key mentions 'debug' was saved")

    @hookimpl
    def ckptlint_rules() -> list[Rule]:
        return [DEBUG]

    @hookimpl
    def ckptlint_check_file(context: FileContext) -> list[Finding]:
        return [DEBUG.finding(f"debug tensor {t.key!r} saved", key=t.key) for t in context.inventory.tensors
                if "debug" in t.key]

The hooks are specified in :mod:`ckptlint.plugin.spec`; the one manager that runs
them is :mod:`ckptlint.plugin.manager` (front ends and the engine only). Built-in
rules, reporters and the target resolver use this very marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..context import FileContext
from ..errors import PluginError
from ..findings import Finding
from ..inventory import Inventory
from ..results import FileReport, Report, Verdict
from ..rule import Rule
from ..vocab import Severity
from .marker import PROJECT, Reporter, hookimpl

if TYPE_CHECKING:
    from ..compat_report import CompatReport
    from ..targets.signature import ModuleSig, Signature, TensorSig
    from .spec import hookspec

_TARGET_NAMES = frozenset({"ModuleSig", "Signature", "TensorSig"})

__all__ = [
    "PROJECT", "CompatReport", "FileContext", "FileReport", "Finding", "Inventory", "ModuleSig", "PluginError",
    "Report", "Reporter", "Rule", "Severity", "Signature", "TensorSig", "Verdict", "hookimpl", "hookspec",
]


def __getattr__(name: str) -> Any:
    """The target-signature types and ``hookspec`` (pluggy's marker), imported on first use: a check without
    a target or plugins never needs them (the built-in rules import this package at startup)."""
    if name in _TARGET_NAMES:
        from ..targets import signature

        return getattr(signature, name)
    if name == "hookspec":
        from .spec import hookspec

        return hookspec
    if name == "CompatReport":
        from ..compat_report import CompatReport

        return CompatReport
    raise AttributeError(f"module 'ckptlint.plugin' has no attribute {name!r}")
