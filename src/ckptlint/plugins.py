"""Old import path of :mod:`ckptlint.plugin.manager`; kept for code that imported it."""

from __future__ import annotations

from .plugin.manager import (
    BUILTIN_PLUGINS,
    PluginError,
    all_rules,
    plugin_manager,
    reporters,
    resolve_spec,
    rule_doc,
    run_check_file_hooks,
)

__all__ = ["BUILTIN_PLUGINS", "PluginError", "all_rules", "plugin_manager", "reporters", "resolve_spec",
           "rule_doc", "run_check_file_hooks"]
