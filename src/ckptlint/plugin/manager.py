"""The one plugin manager: the built-in plugins first, then every ``ckptlint`` entry point.

Only the front ends and the engine (``checker``) use it; analyses, readers and
renderers below them never do (tests/test_core_import_graph.py checks it).

Building pluggy's manager (it inspects every hook's signature) is a good part of a small
check's startup, so while no plugin distribution may be installed and nobody asked for
:func:`plugin_manager`, the hooks run from the built-in plugins' own marks, in the order
pluggy would run them (tests/test_startup_plugins.py compares both).
"""

from __future__ import annotations

import importlib
import types
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import PluginError, TargetError
from ..installed import declares_entry_points
from ..rule import Rule, is_code
from ..vocab import SEVERITIES
from .marker import PROJECT

if TYPE_CHECKING:
    import pluggy

    from ..context import FileContext
    from ..findings import Finding
    from ..targets.signature import Signature
    from .marker import Reporter

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
    """pluggy's manager with the built-in plugins and every installed ``ckptlint`` entry point."""
    import pluggy

    from . import spec

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(spec)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        if declares_entry_points(PROJECT):  # importlib.metadata only where a plugin may be installed
            pm.load_setuptools_entrypoints(PROJECT)
        pm.check_pending()
    except Exception as e:  # noqa: BLE001 - a broken third-party plugin is one line, not a traceback
        raise PluginError(f"loading plugins failed: {type(e).__name__}: {e}") from None
    return pm


class BuiltinImpl:
    """A built-in hook implementation as pluggy's ``HookImpl`` describes it (the fields this module uses)."""

    __slots__ = ("argnames", "function", "plugin_name", "tryfirst", "trylast")

    def __init__(self, plugin_name: str, function: types.FunctionType, tryfirst: bool, trylast: bool) -> None:
        self.plugin_name = plugin_name
        self.function = function
        self.tryfirst = tryfirst
        self.trylast = trylast
        code = function.__code__
        names = code.co_varnames[:code.co_argcount]  # pluggy's varnames: positional, without defaults
        self.argnames = names[:len(names) - len(function.__defaults__ or ())]


@lru_cache(maxsize=1)
def builtin_hooks() -> dict[str, list[BuiltinImpl]] | None:
    """Each hook's built-in implementations in pluggy's ``get_hookimpls()`` order (trylast first, tryfirst
    last; calls run from the end), or None when a plugin distribution may be installed (pluggy's manager then)."""
    if declares_entry_points(PROJECT):  # importlib.metadata only where a plugin may be installed
        return None
    hooks: dict[str, list[BuiltinImpl]] = {}
    for plugin_name in BUILTIN_PLUGINS:
        module = importlib.import_module(plugin_name)
        for attr in sorted(vars(module)):  # the order pluggy's register (dir()) visits them
            fn = getattr(module, attr)
            opts = getattr(fn, PROJECT + "_impl", None) if isinstance(fn, types.FunctionType) else None
            if not isinstance(opts, dict):
                continue
            if opts.get("hookwrapper") or opts.get("wrapper"):
                return None  # pluggy's to run
            impl = BuiltinImpl(plugin_name, fn, bool(opts.get("tryfirst")), bool(opts.get("trylast")))
            _insert(hooks.setdefault(opts.get("specname") or attr, []), impl)
    return hooks


def _insert(impls: list[BuiltinImpl], impl: BuiltinImpl) -> None:
    """Where pluggy's ``HookCaller._add_hookimpl`` puts a (non-wrapper) implementation."""
    if impl.trylast:
        impls.insert(0, impl)
    elif impl.tryfirst:
        impls.append(impl)
    else:
        i = len(impls) - 1
        while i >= 0 and impls[i].tryfirst:
            i -= 1
        impls.insert(i + 1, impl)


def _builtins_only() -> dict[str, list[BuiltinImpl]] | None:
    """The built-in registry, unless pluggy's manager is the one to ask (plugins, or it was built)."""
    return None if plugin_manager.cache_info().currsize else builtin_hooks()


def hookimpls(hook: str) -> list[Any]:
    """``get_hookimpls()`` of ``hook``: pluggy's, or the built-in registry's."""
    builtins = _builtins_only()
    if builtins is None:
        impls: list[Any] = getattr(plugin_manager().hook, hook).get_hookimpls()
        return impls
    return list(builtins.get(hook, ()))


def _call(hook: str, first_result: bool, **kwargs: Any) -> Any:
    """Call ``hook`` as pluggy does (last registered first): every non-None result, or the first one."""
    builtins = _builtins_only()
    if builtins is None:
        return getattr(plugin_manager().hook, hook)(**kwargs)
    results = []
    for impl in reversed(builtins.get(hook, ())):
        result = impl.function(*(kwargs[name] for name in impl.argnames))
        if result is not None:
            if first_result:
                return result
            results.append(result)
    return None if first_result else results


@lru_cache(maxsize=1)
def all_rules() -> dict[str, Rule]:
    """Every declared rule by code; duplicate or malformed codes are plugin errors."""
    rules: dict[str, Rule] = {}
    for impl in hookimpls("ckptlint_rules"):
        name = impl.plugin_name
        try:
            fn: Any = impl.function
            declared = list(fn() or ())
        except Exception as e:  # noqa: BLE001 - a broken plugin is one line, not a traceback
            raise PluginError(f"ckptlint_rules failed: {type(e).__name__}: {e}", plugin=name) from None
        for rule in declared:
            if not is_code(rule.code):
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
    for impl in reversed(hookimpls("ckptlint_check_file")):
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
    for mapping in reversed(_call("ckptlint_reporters", False)):
        out.update(mapping)
    return out


def resolve_spec(spec_text: str, kwargs: dict[str, Any]) -> tuple[Signature, Any]:
    """``(Signature, live model or None)`` from the first resolver that claims the spec."""
    resolved = _call("ckptlint_resolve_target", True, spec=spec_text, kwargs=kwargs)
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
