"""Find the state_dict inside a checkpoint: flat, nested in a training dict, or a pickled module."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from ..errors import UnwrapError
from ..inventory import Inventory, TensorRecord
from ..record import field, record, replace
from .optimizer import optimizer_state
from .scripted import script_entries

WELL_KNOWN_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "ema",
                   "model_ema", "state_dict_ema", "ema_state_dict", "weights", "params", "params_ema",
                   "generator", "student", "teacher")

ORDER_KEEPING = ("torch-zip", "torch-legacy", "torch-tar", "pickle")
"""Formats whose dicts are pickled, so keep the order the keys were inserted in."""


def _sorted_by_name(keys: list[str]) -> bool:
    """A pickled dict in name order was re-sorted (e.g. converted from safetensors): torch's own
    state_dicts put ``weight`` before ``bias``, so a real saving order is almost never sorted."""
    return len(keys) > 1 and all(a <= b for a, b in pairwise(keys))


@record
class NonTensor:
    """A state_dict entry that is not a tensor (torch reports it when the key is expected)."""

    summary: str
    value: Any = field(default=None, compare=False)
    """The value's node in the inventory structure (``compat.plain`` rebuilds plain data from it)."""


@record
class StateDict:
    path: tuple[Any, ...]
    """Where the state_dict sits in the checkpoint (``()`` for the top level)."""
    entries: dict[str, TensorRecord | NonTensor]
    metadata: dict[str, dict[str, Any]] | None
    """Its ``_metadata`` (module versions), or None when the dict carries none."""
    how: str
    """``top-level``, ``key``, ``well-known key``, ``largest dict``, ``module object`` or ``torchscript module``."""
    ordered: bool = False
    """True when ``entries`` are in the order the model saved them (a pickled state_dict keeps
    insertion order; safetensors headers and shard indexes sort keys by name): only then is the
    order evidence for module renames (``compat.align``)."""


def _is_tensor(node: Any) -> bool:
    return isinstance(node, dict) and "__tensor__" in node and len(node) == 1


def _tensor_count(node: Any) -> int:
    if not isinstance(node, dict) or "__object__" in node:
        return 0
    return sum(1 for v in node.values() if _is_tensor(v))


def node_at(structure: Any, path: tuple[Any, ...]) -> Any:
    """The node at a ``--key`` path: through dicts, lists, an object's items, and a pickled object's
    attributes (a module's submodules by name: ``net/module`` is ``ckpt["net"].module``); memo references
    followed. None when the path leads nowhere."""
    node = structure
    for p in path:
        node = resolve_ref(structure, node)
        if isinstance(node, dict) and "__object__" in node and isinstance(node.get("items"), dict):
            node = node["items"]
        elif isinstance(node, dict) and "__object__" in node and str(p) == "__args__" \
                and isinstance(node.get("args"), list):
            node = {"__args__": node["args"]}  # a REDUCE's arguments, as inspect's key paths name them
        elif isinstance(node, dict) and "__object__" in node and isinstance(node.get("state"), dict):
            state = node["state"]
            modules = resolve_ref(structure, state.get("_modules"))
            node = modules if str(p) not in state and isinstance(modules, dict) and str(p) in modules else state
        if isinstance(node, dict) and str(p) in node:
            node = node[str(p)]
        elif isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node):
            node = node[p]
        else:
            return None
    return resolve_ref(structure, node)


def _entries(inv: Inventory, node: dict[str, Any]) -> dict[str, TensorRecord | NonTensor]:
    out: dict[str, TensorRecord | NonTensor] = {}
    for k, v in node.items():
        if _is_tensor(v):
            out[k] = inv.tensors[v["__tensor__"]]
        else:
            out[k] = NonTensor(_summary(v), v)
    return out


def _summary(v: Any) -> str:
    if isinstance(v, dict):
        for marker in ("__object__", "__global__"):
            if marker in v:
                return str(v[marker])
        return "dict"
    return type(v).__name__


def parse_key(text: str) -> tuple[Any, ...]:
    """``--key state_dict`` or ``--key ema/model``: components separated by ``/``."""
    return tuple(int(p) if p.isdigit() else p for p in text.split("/") if p != "")


def find_state_dict(inv: Inventory, key: tuple[Any, ...] | None = None) -> StateDict:
    """The state_dict to compare, its path typed as the checkpoint's keys are (``['state'][5]``)."""
    sd = _find(inv, key)
    if inv.format in ORDER_KEEPING and not _sorted_by_name(list(sd.entries)):
        sd = replace(sd, ordered=True)
    for rec in sd.entries.values():
        if isinstance(rec, TensorRecord) and len(rec.path) > len(sd.path) \
                and all(str(a) == str(b) for a, b in zip(rec.path, sd.path, strict=False)):
            typed = tuple(rec.path[: len(sd.path)])
            return sd if typed == sd.path else replace(sd, path=typed)
    return sd


def _find(inv: Inventory, key: tuple[Any, ...] | None) -> StateDict:
    root = inv.structure
    scripted = script_entries(inv, root) if key is None else None
    if scripted is not None:  # a TorchScript archive's module (compat.scripted)
        return StateDict((), dict(scripted), None, "torchscript module")
    if key is not None:
        node = node_at(root, key)
        if not isinstance(node, dict):
            raise UnwrapError(f"no dict at key path {'/'.join(map(str, key)) or '(top level)'}")
        if "__object__" in node and ("state" in node or _compiled(node)):
            return _from_module(inv, node, key)
        return StateDict(key, _entries(inv, node), _metadata(inv, key), "key")
    pickled_module = isinstance(root, dict) and isinstance(root.get("state"), dict) and "_parameters" in root["state"]
    if isinstance(root, dict) and "__object__" in root and (pickled_module or _compiled(root)):
        return _from_module(inv, root, ())
    if isinstance(root, dict) and "__object__" not in root:
        n = _tensor_count(root)
        if not root or (n and n * 2 >= len(root)):  # {}: an empty state_dict (torch: every key missing)
            return StateDict((), _entries(inv, root), _metadata(inv, ()), "top-level")
        for k in WELL_KNOWN_KEYS:
            node = root.get(k)
            if isinstance(node, dict) and _tensor_count(node):
                return StateDict((k,), _entries(inv, node), _metadata(inv, (k,)), "well-known key")
            if isinstance(node, dict):
                for k2 in WELL_KNOWN_KEYS:
                    if _tensor_count(node.get(k2)):
                        path = (k, k2)
                        return StateDict(path, _entries(inv, node[k2]), _metadata(inv, path), "well-known key")
            if isinstance(node, dict) and "__object__" in node and "_parameters" in node.get("state", {}):
                return _from_module(inv, node, (k,))
    why = optimizer_state(root)
    if why is not None:
        raise UnwrapError(why)
    best = _largest(root)
    if best is None and isinstance(root, dict) and "__object__" not in root:
        for k in WELL_KNOWN_KEYS:  # {"state_dict": {}}: an empty state_dict under its usual name
            if root.get(k) == {}:
                return StateDict((k,), {}, _metadata(inv, (k,)), "well-known key")
    if best is None:
        raise UnwrapError("no state_dict found: the checkpoint holds no dict of tensors")
    path, node = best
    return StateDict(path, _entries(inv, node), _metadata(inv, path), "largest dict")


def _largest(root: Any, limit: int = 200_000) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    stack: list[tuple[tuple[Any, ...], Any]] = [((), root)]
    best: tuple[int, tuple[Any, ...], dict[str, Any]] | None = None
    seen = 0
    while stack and seen < limit:
        path, node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            n = _tensor_count(node)
            if n and (best is None or n > best[0]):
                best = (n, path, node)
            if "__object__" not in node:
                stack.extend((path + (k,), v) for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node) if isinstance(v, (dict, list)))
    return None if best is None else (best[1], best[2])


def _metadata(inv: Inventory, path: tuple[Any, ...]) -> dict[str, dict[str, Any]] | None:
    return inv.metadata.get("/".join(str(p) for p in path))


def _from_module(inv: Inventory, node: dict[str, Any], path: tuple[Any, ...]) -> StateDict:
    """A pickled nn.Module: its state_dict keys, as ``module.state_dict()`` would produce them. A submodule
    reached under two names (a pickle memo reference, ``{"__ref__": ...}``) is listed under both, as
    ``state_dict()`` lists it; a module that contains itself is torch's RecursionError, an error here."""
    entries: dict[str, TensorRecord | NonTensor] = {}
    metadata: dict[str, dict[str, Any]] = {}
    stack: list[tuple[str, Any, tuple[int, ...]]] = [("", node, ())]
    visits = 0
    while stack:  # depth first, children in order: the order ``state_dict()`` lists keys in
        prefix, mod, chain = stack.pop()
        mod = resolve_ref(inv.structure, mod)
        state = mod.get("state") if isinstance(mod, dict) else None
        if state is None and _compiled(mod):  # torch.compile's wrapper: its one submodule, _orig_mod
            state = {"_modules": {"_orig_mod": mod["args"][0]}}
        visits += 1
        if not isinstance(state, dict) or len(chain) > 1000:
            continue
        if id(mod) in chain:
            raise UnwrapError(f"the pickled module contains itself at {prefix[:-1] or '(top level)'}: "
                              "state_dict() never ends (torch raises RecursionError)")
        if visits > _MAX_MODULE_VISITS:
            raise UnwrapError(f"the pickled module's tree has more than {_MAX_MODULE_VISITS:,} submodule entries")
        params = resolve_ref(inv.structure, state.get("_parameters")) or {}
        buffers = resolve_ref(inv.structure, state.get("_buffers")) or {}
        skipped = resolve_ref(inv.structure, state.get("_non_persistent_buffers_set")) or {}
        nonpersistent = set(skipped.get("__set__", []) if isinstance(skipped, dict) else [])
        for group in (params, {k: v for k, v in buffers.items() if k not in nonpersistent}):
            if isinstance(group, dict):
                for name, v in group.items():
                    if _is_tensor(v):
                        entries[prefix + name] = inv.tensors[v["__tensor__"]]
        version = state.get("_version")
        metadata[prefix[:-1]] = {"version": version} if isinstance(version, int) else {}
        children = resolve_ref(inv.structure, state.get("_modules")) or {}
        if isinstance(children, dict):
            inner = chain + (id(mod),)
            stack.extend(reversed([(f"{prefix}{name}.", child, inner) for name, child in children.items()
                                   if isinstance(child, dict)]))
    return StateDict(path, entries, None, "module object")


_MAX_MODULE_VISITS = 1_000_000
COMPILED = "torch._dynamo.eval_frame.OptimizedModule"
"""``torch.compile(model)``: pickled as ``OptimizedModule(model, dynamo_ctx)`` (its ``__reduce__``); its
``state_dict()`` is the model's under ``_orig_mod.``."""


def _compiled(node: Any) -> bool:
    return isinstance(node, dict) and node.get("__object__") == COMPILED and "state" not in node \
        and isinstance(node.get("args"), list) and bool(node["args"]) and isinstance(node["args"][0], dict)


def resolve_ref(root: Any, node: Any) -> Any:
    """The node a ``{"__ref__": "a/b"}`` marker names (formats.collect: a container met again is shown once,
    at the key path of its first occurrence, from the stream's root); other nodes as they are."""
    if not (isinstance(node, dict) and set(node) == {"__ref__"}):
        return node
    cur: Any = root
    ref = str(node["__ref__"])
    for part in ref.split("/") if ref else ():  # "": the root itself
        nxt: Any = None
        if isinstance(cur, dict) and "__object__" in cur:
            if part == "__state__":
                nxt = cur.get("state")
            for field in ("state", "items", "dictitems"):
                box = cur.get(field)
                if nxt is None and isinstance(box, dict) and part in box:
                    nxt = box[part]
                elif nxt is None and isinstance(box, list) and part.isdigit() and int(part) < len(box):
                    nxt = box[int(part)]
        elif isinstance(cur, dict):
            nxt = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            nxt = cur[int(part)]
        if nxt is None:
            return None
        cur = nxt
    return None if isinstance(cur, dict) and set(cur) == {"__ref__"} else cur
