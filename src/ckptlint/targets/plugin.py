"""The built-in target resolver: ``package.module:callable`` (runs last, after plugins)."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def ckptlint_resolve_target(spec: str, kwargs: dict[str, Any]) -> Any:
    from .resolve import live_signature

    return live_signature(spec, kwargs)
