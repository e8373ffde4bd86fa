"""``ckptlint convert``: a pickle checkpoint's state_dict written as safetensors, without running the file.

``ckptlint.convert(src, dest, ...)`` is :func:`ckptlint.convert.api.convert` (docs/convert.md, docs/api.md).
This package is also that function: importing ``ckptlint.convert.<module>`` makes the import system set
``ckptlint.convert`` to this package, replacing any function of that name, so the package itself is
callable and ``ckptlint.convert(...)`` works whatever was imported first. Nothing heavy is imported here.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import ConvertResult


class _CallablePackage(types.ModuleType):
    """``ckptlint.convert(src, dest, ...)`` calls :func:`ckptlint.convert.api.convert`."""

    def __call__(self, *args: Any, **kwargs: Any) -> ConvertResult:
        from .api import convert

        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
