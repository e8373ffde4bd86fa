"""Turn the static unpickler's object tree into tensor records and a JSON structure.

Each container is visited once (a second reference becomes a ``__ref__``
marker), so shared references cannot make the walk exponential; tensors are
recorded at every path that reaches them, because a tied weight lives at two
keys.
"""

from __future__ import annotations

from typing import Any

from ..inventory import KeyPath, TensorRecord, records_from_columns
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .stubs import Call, Global, ODict, Storage, TensorStub, short_repr

_MAX_STR = 1000
_SCALARS = (int, str, float, bool)
"""The ``_metadata`` values kept (a module's ``version`` …)."""


class Collected:
    """The tensor records, state_dict metadata and notes one pickle's object tree yields.

    Tensors are noted as rows of :class:`TensorRecord`'s fields and made records together when
    :attr:`tensors` is read (:func:`~ckptlint.inventory.records_from_columns`: a frozen record's
    ``__init__`` per tensor was a twentieth of a 20,000-tensor check)."""

    __slots__ = ("_made", "global_paths", "metadata", "notes", "rows")

    def __init__(self) -> None:
        self._made: list[TensorRecord] = []
        self.rows: list[tuple[Any, ...]] = []
        """TensorRecord field values in field order, not yet made records."""
        self.metadata: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.global_paths: dict[tuple[str, int], KeyPath] = {}
        """(stream, offset) of a global -> the first key path where its object sits."""

    @property
    def tensors(self) -> list[TensorRecord]:
        if self.rows:
            self._made.extend(records_from_columns(TensorRecord, zip(*self.rows, strict=True)))
            self.rows.clear()
        return self._made


def path_label(path: KeyPath) -> str:
    return "/".join(str(p) for p in path)


class _Walker:
    def __init__(self, stream: str, limits: Limits, out: Collected, budget: Budget) -> None:
        self.stream = stream
        self.limits = limits
        self.budget = budget
        self.out = out
        self.seen: dict[int, KeyPath] = {}
        self.max_tensors = budget.limits.max_tensors
        self.truncated = False

    def walk(self, obj: Any, path: KeyPath) -> Any:
        t = type(obj)
        if t is TensorStub:  # the common cases first (the chain below gives the same for them)
            return {"__tensor__": self._tensor(obj, path)}
        if t is str:
            return obj if len(obj) <= _MAX_STR else obj[:_MAX_STR] + "…"
        if obj is None or isinstance(obj, (bool, float)):
            return obj
        if isinstance(obj, int):
            return obj if abs(obj) < 1 << 63 else {"__int__": f"{obj.bit_length()} bits"}
        if isinstance(obj, str):
            return obj if len(obj) <= _MAX_STR else obj[:_MAX_STR] + "…"
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return {"__bytes__": len(obj)}
        if isinstance(obj, TensorStub):
            return {"__tensor__": self._tensor(obj, path)}
        if isinstance(obj, Global):
            self.out.global_paths.setdefault((obj.stream, obj.offset), path)
            return {"__global__": obj.qualname}
        if isinstance(obj, Storage):
            return {"__storage__": obj.key}
        if len(path) >= self.limits.max_walk_depth:
            self.truncated = True
            return {"__truncated__": True}
        oid = id(obj)
        if oid in self.seen:
            return {"__ref__": path_label(self.seen[oid])}
        self.seen[oid] = path
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            tensor, walk = self._tensor, self.walk
            for k, v in obj.items():
                if type(k) is str:
                    # a state_dict's tensor: walk's first case, without the call
                    out[k] = {"__tensor__": tensor(v, (*path, k))} if type(v) is TensorStub else walk(v, (*path, k))
                    continue
                key = k if isinstance(k, (str, int, float, bool)) or k is None else _label(k)
                out[str(key)] = self.walk(v, path + (key,))
            if isinstance(obj, ODict):
                self._metadata(obj, path)
                if obj.qualname != "collections.OrderedDict":
                    return {"__object__": obj.qualname, "items": out}
            return out
        if isinstance(obj, (list, tuple)):
            return [self.walk(v, path + (i,)) for i, v in enumerate(obj)]
        if isinstance(obj, (set, frozenset)):
            return {"__set__": [self.walk(v, path + (i,)) for i, v in enumerate(obj)]}
        if isinstance(obj, Call):
            return self._call(obj, path)
        return {"__object__": type(obj).__name__}

    def _call(self, obj: Call, path: KeyPath) -> Any:
        node: dict[str, Any] = {"__object__": obj.qualname}
        if isinstance(obj.func, Global):
            self.out.global_paths.setdefault((obj.func.stream, obj.func.offset), path)
        if obj.args:
            node["args"] = [self.walk(v, path + ("__args__", i)) for i, v in enumerate(obj.args)]
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = state[0]  # (state, slotstate)
        if isinstance(state, dict):
            node["state"] = {str(k): self.walk(v, path + (k if isinstance(k, (str, int)) else _label(k),))
                             for k, v in state.items()}
        elif state is not None:
            node["state"] = self.walk(state, path + ("__state__",))
        if obj.items:
            node["items"] = [self.walk(v, path + (i,)) for i, v in enumerate(obj.items)]
        if obj.dictitems:
            node["dictitems"] = {str(_label(k) if not isinstance(k, (str, int)) else k):
                                 self.walk(v, path + (k if isinstance(k, (str, int)) else _label(k),))
                                 for k, v in obj.dictitems}
        return node

    def _metadata(self, obj: ODict, path: KeyPath) -> None:
        md = obj.metadata
        if isinstance(md, dict):
            clean: dict[str, Any] = {}
            for k, v in md.items():
                if isinstance(k, str) and isinstance(v, dict):
                    # a loop, not a comprehension: a state_dict has one entry per module (a function call each)
                    entry: dict[str, Any] = {}
                    for a, b in v.items():
                        if isinstance(b, _SCALARS):
                            entry[a if type(a) is str else str(a)] = b
                    clean[k] = entry
            self.out.metadata[path_label(path)] = clean

    def _tensor(self, t: TensorStub, path: KeyPath) -> int:
        budget = self.budget
        if budget.tensors < self.max_tensors:
            budget.tensors += 1  # charge_tensors, inline while it cannot raise
        else:
            budget.charge_tensors()
        st = t.storage
        if st is None:
            key, offset, nbytes = None, t.offset, None
        elif st.view_of:
            key, offset, nbytes = st.view_of, t.offset + st.view_offset, st.nbytes
        else:
            key, offset, nbytes = st.key, t.offset, st.nbytes
        out = self.out
        # TensorRecord's fields in order: (path, dtype, shape, stride, storage_offset, storage_key, storage_bytes,
        # device, is_parameter, requires_grad, layout, rebuild, stream)
        out.rows.append((path, t.dtype, t.shape, t.stride, offset, key, nbytes, t.device, t.is_parameter,
                         t.requires_grad, t.layout, t.rebuild, self.stream))
        return len(out._made) + len(out.rows) - 1


def _label(k: Any) -> str:
    if isinstance(k, (Global, Call)):
        return f"<{k.qualname}>"
    if isinstance(k, tuple):
        return short_repr(tuple(_label(x) if isinstance(x, (Global, Call, TensorStub)) else x for x in k[:8]), 200)
    return short_repr(k, 200) if not isinstance(k, TensorStub) else "<tensor>"


def collect(obj: Any, stream: str, out: Collected, *, limits: Limits = DEFAULT_LIMITS,
            root: KeyPath = (), budget: Budget | None = None) -> Any:
    """Record the tensors in ``obj`` into ``out`` and return its JSON structure."""
    w = _Walker(stream, limits, out, budget if budget is not None else Budget(limits))
    structure = w.walk(obj, root)
    if w.truncated:
        out.notes.append(f"{stream}: nesting deeper than {limits.max_walk_depth} levels was not followed")
    return structure
