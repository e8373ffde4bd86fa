"""The one plugin manager: the built-in plugins first, then every ``ckptlint`` entry point.

Only the front ends and the engine (``checker``) use it; analyses, readers and
renderers below them never do (tests/test_core_import_graph.py checks it).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pluggy

from ..errors import PluginError, TargetError
from ..installed import declares_entry_points
from ..rule import CODE_RE, Rule
from ..vocab import SEVERITIES
from . import spec

if TYPE_CHECKING:
    from ..context import FileContext
    from ..findings import Finding
    from ..targets.signature import Signature
    from .spec import Reporter

BUILTIN_PLUGINS = (
    "ckptlint.rules.safety",
    "ckptlint.rules.torchscript",
    "ckptlint.rules.device",
    "ckptlint.rules.compat",
    "ckptlint.rules.library",
    "ckptlint.rules.hygiene",
    "ckptlint.rules.policy",
    "ckptlint.rules.input",
    "ckptlint.report.plugin",
    "ckptlint.targets.plugin",
    "ckptlint.targets.libraries",
)
"""Every module of ckptlint that implements a hook (tests/test_core_plugins.py proves the list complete)."""


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        if declares_entry_points(spec.PROJECT):  # importlib.metadata only where a plugin may be installed
            pm.load_setuptools_entrypoints(spec.PROJECT)
        pm.check_pending()
    except Exception as e:  # noqa: BLE001 - a broken third-party plugin is one line, not a traceback
        raise PluginError(f"loading plugins failed: {type(e).__name__}: {e}") from None
    return pm


@lru_cache(maxsize=1)
def all_rules() -> dict[str, Rule]:
    """Every declared rule by code; duplicate or malformed codes are plugin errors."""
    rules: dict[str, Rule] = {}
    for impl in plugin_manager().hook.ckptlint_rules.get_hookimpls():
        name = impl.plugin_name
        try:
            fn: Any = impl.function
            declared = list(fn() or ())
        except Exception as e:  # noqa: BLE001 - a broken plugin is one line, not a traceback
            raise PluginError(f"ckptlint_rules failed: {type(e).__name__}: {e}", plugin=name) from None
        for rule in declared:
            if not CODE_RE.match(rule.code):
                raise PluginError(f"rule code {rule.code!r} is malformed", plugin=name)
            if rule.code in rules:
                raise PluginError(f"rule {rule.code} is already declared by {rules[rule.code].plugin}", plugin=name)
            if rule.severity not in SEVERITIES:
                raise PluginError(f"rule {rule.code} has severity {rule.severity!r}", plugin=name)
            rules[rule.code] = Rule(rule.code, rule.name, rule.severity, rule.summary, rule.doc, name)
    return dict(sorted(rules.items()))


def run_check_file_hooks(context: FileContext) -> list[Finding]:
    """Every plugin's findings for one file. A plugin that raises, or returns a code no plugin
    declared, is a PluginError naming it."""
    declared = all_rules()
    findings: list[Finding] = []
    for impl in reversed(plugin_manager().hook.ckptlint_check_file.get_hookimpls()):
        try:
            hook: Any = impl.function
            result = list(hook(**dict.fromkeys(impl.argnames, context)) or ())
        except Exception as e:  # noqa: BLE001
            raise PluginError(f"ckptlint_check_file failed on {context.path}: {type(e).__name__}: {e}",
                              plugin=impl.plugin_name) from None
        for f in result:
            code = getattr(f, "code", None)
            if code not in declared:
                raise PluginError(f"ckptlint_check_file returned {code!r}, a code no plugin declared "
                                  "(declare it in ckptlint_rules and make it with RULE.finding)",
                                  plugin=impl.plugin_name)
        findings.extend(result)
    return findings


def reporters() -> dict[str, Reporter]:
    """Output formats by name; a later plugin may replace a built-in one."""
    out: dict[str, Reporter] = {}
    for mapping in reversed(plugin_manager().hook.ckptlint_reporters()):
        out.update(mapping)
    return out


def resolve_spec(spec_text: str, kwargs: dict[str, Any]) -> tuple[Signature, Any]:
    """``(Signature, live model or None)`` from the first resolver that claims the spec."""
    resolved = plugin_manager().hook.ckptlint_resolve_target(spec=spec_text, kwargs=kwargs)
    if resolved is None:
        raise TargetError(f"target {spec_text}: no resolver accepted it", spec=spec_text)
    sig, model = resolved
    return sig, model


def rule_doc(rule: Rule) -> str:
    """A rule's page: its own ``doc``, else the page shipped in ckptlint/rules/docs, else its summary."""
    from ..report.rules import rule_page

    return rule_page(rule)


__all__ = ["BUILTIN_PLUGINS", "PluginError", "all_rules", "plugin_manager", "reporters", "resolve_spec",
           "rule_doc", "run_check_file_hooks"]
