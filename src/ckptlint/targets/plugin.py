"""The built-in target resolver: ``package.module:callable`` (runs last, after plugins)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..plugin import hookimpl

if TYPE_CHECKING:  # loaded when a target is resolved, not by every check (startup)
    from .signature import Signature


@hookimpl(trylast=True)
def ckptlint_resolve_target(spec: str, kwargs: dict[str, Any]) -> tuple[Signature, Any] | None:
    """The cached signature while the target's sources are unchanged, else a live (meta) build."""
    import sys

    from . import cache
    from .reads import data_files, recording
    from .resolve import live_signature

    cached = cache.lookup(spec, kwargs)
    if cached is not None:
        return cached, None
    before = set(sys.modules)
    with recording() as opened:  # config files the factory reads are dependencies too
        sig, model = live_signature(spec, kwargs)
    class_modules = {m.cls.rsplit(".", 1)[0] for m in sig.modules}
    cache.store(spec, kwargs, sig, set(sys.modules) - before | _spec_modules(spec) | class_modules,
                files=data_files(opened))
    return sig, model


def _spec_modules(spec: str) -> set[str]:
    """The spec's own module and its packages (already imported before a repeat build)."""
    import sys

    module = spec.split(":", 1)[0]
    parts = module.split(".")
    names = {".".join(parts[:i]) for i in range(1, len(parts) + 1)} | {module + ".models"}
    return {n for n in names if n in sys.modules}
