"""Old import path of :mod:`ckptlint.plugin.spec` (``from ckptlint.hookspecs import hookimpl``); use
``from ckptlint.plugin import hookimpl``."""

from __future__ import annotations

from .plugin.spec import (
    PROJECT,
    Reporter,
    ckptlint_check_file,
    ckptlint_reporters,
    ckptlint_resolve_target,
    ckptlint_rules,
    hookimpl,
    hookspec,
)

__all__ = ["PROJECT", "Reporter", "ckptlint_check_file", "ckptlint_reporters", "ckptlint_resolve_target",
           "ckptlint_rules", "hookimpl", "hookspec"]
