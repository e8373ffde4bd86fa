"""``hookimpl``: the mark pluggy's ``HookimplMarker("ckptlint")`` leaves on a hook implementation, made
without importing pluggy; and the ``Reporter`` type. What plugin modules need at import.

Every built-in rule module is marked at import, and a check without plugins never builds pluggy's
manager (:mod:`ckptlint.plugin.manager`), so importing pluggy here would be startup spent for nothing.
The mark is pluggy's own (a ``ckptlint_impl`` dict of the same options), so pluggy's manager finds
these implementations exactly as if pluggy's marker had made them (tests/test_startup_plugins.py
compares both); a plugin may use either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from ..results import Report

PROJECT = "ckptlint"

Reporter = Callable[["Report", dict[str, Any]], str]
"""``render(report, options) -> str``: one output format."""

_F = TypeVar("_F", bound=Callable[..., object])


class HookimplMarker:
    """Marks functions as hook implementations (the signature and effect of ``pluggy.HookimplMarker``)."""

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    @overload
    def __call__(self, function: _F, hookwrapper: bool = ..., optionalhook: bool = ..., tryfirst: bool = ...,
                 trylast: bool = ..., specname: str | None = ..., wrapper: bool = ...) -> _F: ...

    @overload
    def __call__(self, function: None = ..., hookwrapper: bool = ..., optionalhook: bool = ...,
                 tryfirst: bool = ..., trylast: bool = ..., specname: str | None = ...,
                 wrapper: bool = ...) -> Callable[[_F], _F]: ...

    def __call__(self, function: _F | None = None, hookwrapper: bool = False, optionalhook: bool = False,
                 tryfirst: bool = False, trylast: bool = False, specname: str | None = None,
                 wrapper: bool = False) -> _F | Callable[[_F], _F]:
        def mark(func: _F) -> _F:
            opts = {"wrapper": wrapper, "hookwrapper": hookwrapper, "optionalhook": optionalhook,
                    "tryfirst": tryfirst, "trylast": trylast, "specname": specname}
            setattr(func, self.project_name + "_impl", opts)
            return func

        return mark if function is None else mark(function)


hookimpl = HookimplMarker(PROJECT)
"""``@hookimpl`` / ``@hookimpl(tryfirst=True)``: mark a function as a ckptlint hook implementation."""
