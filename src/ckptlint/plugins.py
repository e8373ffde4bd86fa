"""The plugin manager: built-in plugins first, then every ``ckptlint`` entry point."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pluggy

from . import hookspecs
from .errors import CkptlintError
from .rule import CODE_RE, Rule

BUILTIN_PLUGINS = (
    "ckptlint.rules.safety",
    "ckptlint.rules.torchscript",
    "ckptlint.rules.device",
    "ckptlint.rules.compat",
    "ckptlint.rules.hygiene",
    "ckptlint.rules.policy",
    "ckptlint.report.plugin",
    "ckptlint.targets.plugin",
)


class PluginError(CkptlintError):
    pass


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    import importlib

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        pm.check_pending()
    except Exception as e:  # noqa: BLE001 - a broken third-party plugin is one line, not a traceback
        raise PluginError(f"loading plugins failed: {type(e).__name__}: {e}") from None
    return pm


@lru_cache(maxsize=1)
def all_rules() -> dict[str, Rule]:
    """Every declared rule by code; duplicate or malformed codes are plugin errors."""
    pm = plugin_manager()
    rules: dict[str, Rule] = {}
    for impl in pm.hook.ckptlint_rules.get_hookimpls():
        try:
            fn: Any = impl.function
            declared = list(fn() or ())
        except Exception as e:  # noqa: BLE001 - a broken plugin is one line, not a traceback
            raise PluginError(f"plugin {impl.plugin_name}: ckptlint_rules failed: {type(e).__name__}: {e}") from None
        for rule in declared:
            if not CODE_RE.match(rule.code):
                raise PluginError(f"plugin {impl.plugin_name}: rule code {rule.code!r} is malformed")
            if rule.code in rules:
                raise PluginError(f"plugin {impl.plugin_name}: rule {rule.code} is already declared "
                                  f"by {rules[rule.code].plugin}")
            if rule.severity not in ("error", "warning", "info"):
                raise PluginError(f"plugin {impl.plugin_name}: rule {rule.code} has severity {rule.severity!r}")
            rules[rule.code] = Rule(rule.code, rule.name, rule.severity, rule.summary, rule.doc,
                                    impl.plugin_name)
    return dict(sorted(rules.items()))


def run_check_file_hooks(context: Any) -> list[Any]:
    """Every plugin's findings for one file; a plugin that raises is named in a PluginError."""
    findings: list[Any] = []
    for impl in reversed(plugin_manager().hook.ckptlint_check_file.get_hookimpls()):
        try:
            hook: Any = impl.function
            result = hook(**{name: context for name in impl.argnames})
        except Exception as e:  # noqa: BLE001
            raise PluginError(f"plugin {impl.plugin_name}: ckptlint_check_file failed on {context.path}: "
                              f"{type(e).__name__}: {e}") from None
        findings.extend(result or ())
    return findings


def reporters() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mapping in reversed(plugin_manager().hook.ckptlint_reporters()):
        out.update(mapping)
    return out


def rule_doc(rule: Rule) -> str:
    """A rule's page: its own ``doc``, else the page shipped in ckptlint/rules/docs, else its summary."""
    if rule.doc:
        return rule.doc
    from importlib import resources

    try:
        return resources.files("ckptlint.rules").joinpath("docs", f"{rule.code}.md").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError, ModuleNotFoundError):
        return f"# {rule.code} {rule.name}\n\nDefault severity: **{rule.severity}**.\n\n{rule.summary}.\n"
