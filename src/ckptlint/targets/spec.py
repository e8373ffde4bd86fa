"""Target specs: ``package.module:callable`` plus keyword arguments.

Importing the spec's module is the one import ckptlint ever does by name, and
only of a spec the user wrote (never one a checkpoint names).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from ..errors import TargetError
from ..record import field, record

__all__ = ["TargetError", "TargetSpec", "parse_kwargs", "parse_spec", "require_torch"]


@record
class TargetSpec:
    """A parsed ``package.module:callable`` spec with its keyword arguments."""

    module: str
    attr: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"{self.module}:{self.attr}"

    def resolve(self) -> Any:
        """The class or factory the spec names (imports its module)."""
        return self.resolve_with_module()[0]

    def resolve_with_module(self) -> tuple[Any, str]:
        """The callable and the module it was found in (short forms expand: torchvision -> torchvision.models)."""
        candidates = [self.module]
        if "." not in self.module:  # short form: torchvision:resnet18 -> torchvision.models
            candidates.append(f"{self.module}.models")
        last: Exception | None = None
        for name in candidates:
            try:
                mod = _import_from_here(name)
            except ImportError as e:
                last = e
                continue
            obj = mod
            try:
                for part in self.attr.split("."):
                    obj = getattr(obj, part)
            except AttributeError as e:
                last = e
                continue
            if not callable(obj):
                raise TargetError(f"target {self.text}: {name}:{self.attr} is not callable")
            return obj, name
        raise TargetError(f"target {self.text}: cannot import ({last})")


def parse_spec(text: str, kwargs: str | dict[str, Any] | None = None) -> TargetSpec:
    """``pkg.mod:callable`` (or ``pkg:callable``); kwargs as a dict or a JSON object string."""
    if ":" not in text or text.count(":") != 1:
        raise TargetError(f"target {text!r}: expected 'package.module:callable'")
    module, attr = text.split(":")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise TargetError(f"target {text!r}: expected 'package.module:callable'")
    return TargetSpec(module, attr, parse_kwargs(kwargs))


def parse_kwargs(kwargs: str | dict[str, Any] | None) -> dict[str, Any]:
    """Target keyword arguments from a dict or a JSON object string."""
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except ValueError as e:
            raise TargetError(f"--model-kwargs is not JSON: {e}") from None
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise TargetError("model kwargs must be a JSON object")
    return dict(kwargs)


def require_torch(what: str) -> Any:
    """The torch module, or TargetError with the one line to show: only building a live target needs torch,
    and without it that must be a usage error (exit 2), not an ImportError traceback (exit 1)."""
    try:
        import torch
    except ImportError:
        raise TargetError(f"{what} needs torch to build the model, and torch is not installed: pip install torch, "
                          "or check against a snapshot written where torch is (ckptlint snapshot; "
                          "check --snapshot FILE)") from None
    return torch


def _import_from_here(name: str) -> Any:
    """Import a user's target module; like ``python -m``, the working directory counts as a source root."""
    import os
    import sys

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path or not (e.name and name.startswith(e.name.split(".")[0])):
            raise
        sys.path.append(cwd)
        return importlib.import_module(name)
