"""Is ``module.Name`` a class defined in that module? Answered from source text, never by importing.

A model class is pickled at its defining module (``torch.nn.modules.linear.Linear``);
a name that is only imported or assigned there (``torchvision.models.resnet.torch``)
is not a class of that module, whatever its spelling. We find the module's source
file by walking ``sys.path`` by hand (``importlib.util.find_spec`` would import the
parent packages) and read the class statements at the top level of its ``ast``
(also inside top-level ``if``/``try``/``with`` blocks, where version-dependent
definitions live). Extension modules and zipped packages have no readable source:
the answer is then "unknown" and the caller decides by other evidence.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a source is parsed: most checks name no module class (start-up)
    import ast

MAX_SOURCE_BYTES = 4 << 20
"""Bigger source files are not parsed (the answer is "unknown")."""


def defines_class(module: str, name: str) -> bool | None:
    """True: the module's source defines ``class name`` at top level; False: it does not; None: no source."""
    classes = _classes(module, tuple(p for p in sys.path if isinstance(p, str)))
    return None if classes is None else name in classes


def find_source(module: str, path: list[str] | tuple[str, ...]) -> str | None:
    """The ``.py`` file (or package ``__init__.py``) ``import module`` would read, found by hand."""
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    for entry in path:
        base = os.path.join(entry or ".", *parts)
        for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
            if os.path.isfile(candidate):
                return candidate
        if len(parts) > 1 and os.path.isfile(os.path.join(entry or ".", parts[0], "__init__.py")):
            return None  # a regular package is not merged across sys.path: its submodule is missing
    return None


@lru_cache(maxsize=512)
def _classes(module: str, path: tuple[str, ...]) -> frozenset[str] | None:
    src = find_source(module, path)
    if src is None:
        return None
    import ast

    try:
        if os.path.getsize(src) > MAX_SOURCE_BYTES:
            return None
        with open(src, "rb") as f:
            tree = ast.parse(f.read(), src)
    except (OSError, SyntaxError, ValueError):
        return None
    return frozenset(_top_level_classes(tree.body))


def _top_level_classes(body: list[ast.stmt]) -> set[str]:
    import ast

    found: set[str] = set()
    for node in body:
        if isinstance(node, ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.If):
            found |= _top_level_classes(node.body) | _top_level_classes(node.orelse)
        elif isinstance(node, ast.Try):
            found |= _top_level_classes(node.body) | _top_level_classes(node.orelse)
            for h in node.handlers:
                found |= _top_level_classes(h.body)
        elif isinstance(node, ast.With):
            found |= _top_level_classes(node.body)
    return found
