"""Plain Python values rebuilt from the inventory's structure nodes (no checkpoint code runs).

Used to hand a saved ``_extra_state`` to the target's own ``set_extra_state`` in a live
check: only built-in data (dicts with string keys, lists, numbers, strings, None, tensors as
stand-ins) is rebuilt; anything else is :class:`Opaque` and the check says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Opaque(Exception):
    """The node holds something ckptlint cannot rebuild exactly (an object, bytes, a cut value)."""


_MARKERS = ("__object__", "__global__", "__set__", "__bytes__", "__int__", "__truncated__", "__ref__",
            "__storage__")


def rebuild(node: Any, tensor: Callable[[int], Any], depth: int = 0) -> Any:
    """The value a node stands for; ``tensor(index)`` makes the stand-in for ``{"__tensor__": i}``."""
    if depth > 100:
        raise Opaque("nested too deep")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):  # the structure does not tell lists from tuples
        raise Opaque("a list or tuple")
    if isinstance(node, dict):
        if set(node) == {"__tensor__"}:
            return tensor(node["__tensor__"])
        if any(m in node for m in _MARKERS):
            raise Opaque(next(m for m in _MARKERS if m in node))
        if any(_maybe_number(k) for k in node):
            raise Opaque("a key that may have been a number")  # keys were stringified
        return {k: rebuild(v, tensor, depth + 1) for k, v in node.items()}
    raise Opaque(type(node).__name__)


def _maybe_number(key: str) -> bool:
    if key in ("None", "True", "False"):
        return True
    try:
        float(key)
    except ValueError:
        return False
    return True
