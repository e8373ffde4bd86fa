"""The state_dict of a TorchScript archive's module, from the attributes its data.pkl holds.

A scripted module pickles each submodule as a ``__torch__.<qualname>`` object whose state is a
dict of its attributes: tensors are its parameters and buffers, ``__torch__`` objects its
submodules. Keys are joined with dots as ``ScriptModule.state_dict()`` joins them.
"""

from __future__ import annotations

from typing import Any

from ..inventory import Inventory, TensorRecord

SCRIPT_PREFIX = "__torch__."


def is_script_module(node: Any) -> bool:
    return isinstance(node, dict) and str(node.get("__object__", "")).startswith(SCRIPT_PREFIX) \
        and isinstance(node.get("state"), dict)


def script_entries(inv: Inventory, root: Any, limit: int = 100_000) -> dict[str, TensorRecord] | None:
    """``{key: tensor}`` for a scripted module at ``root``; None when ``root`` is not one."""
    if not is_script_module(root):
        return None
    out: dict[str, TensorRecord] = {}
    stack: list[tuple[str, dict[str, Any]]] = [("", root)]
    seen = 0
    while stack and seen < limit:
        prefix, mod = stack.pop(0)
        seen += 1
        for name, value in mod["state"].items():
            if isinstance(value, dict) and set(value) == {"__tensor__"}:
                index = value["__tensor__"]
                if isinstance(index, int) and 0 <= index < len(inv.tensors):
                    out[prefix + name] = inv.tensors[index]
            elif is_script_module(value):
                stack.append((f"{prefix}{name}.", value))
    return out
