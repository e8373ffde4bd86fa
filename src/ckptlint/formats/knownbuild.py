"""What BUILD, APPEND(S), SETITEM(S), ADDITEMS and REDUCE do to objects whose class is known.

CPython's ``load_build`` calls ``__setstate__`` when the object has one, else splits a 2-tuple into
(state, slot state), updates ``__dict__`` from a dict state and sets attributes from a slot-state dict;
``do_append`` needs ``extend`` or ``append``, ``do_setitems`` item assignment, ``load_additems`` ``add``.
For plain values, builtin classes and pure builtin functions, ``collections.OrderedDict``/``Counter``,
``_codecs.encode``, torch's allowlisted Python functions, ``__future__`` features, torch dtypes and
qschemes, and fresh instances of builtin classes (``ValueError(...)``), the answer is known; for every
other object (and for states only running the file could give) the machine reads on.
"""

from __future__ import annotations

import _codecs
import collections
import functools
from typing import Any

from .knowncalls import OBJECTS, PLAIN, TORCH_CLASSES, TORCH_FUNCTIONS, builtin_object, global_kind
from .stubs import Call, Global, Storage, TensorStub

_IMMUTABLE_TYPE = 1 << 8
"""Py_TPFLAGS_IMMUTABLETYPE: builtin classes take no new attributes."""


class _Model:
    """How an object answers ``load_build`` and the item opcodes."""

    def __init__(self, what: str, *, setstate: str = "", dict_mode: str = "none", settable: bool = False,
                 methods: frozenset[str] = frozenset(), callable_: bool = True) -> None:
        self.what = what
        self.setstate = setstate
        """"" (none), "unbound" (a class's: raises on a plain state), "exception" (BaseException's)
        or "other" (unknown)."""
        self.dict_mode = dict_mode
        """"none" (no ``__dict__``), "readonly" (a class's mappingproxy) or "writable"."""
        self.settable = settable
        self.methods = methods
        """Which of ``extend``, ``append``, ``__setitem__``, ``add`` it has."""
        self.callable = callable_


def _methods(cls: type) -> frozenset[str]:
    return frozenset(m for m in ("extend", "append", "__setitem__", "add") if getattr(cls, m, None) is not None)


def _model(obj: Any) -> _Model | None:
    if isinstance(obj, PLAIN):
        return _Model(type(obj).__name__, methods=_methods(type(obj)), callable_=False)
    if isinstance(obj, Call):
        return _instance(obj)
    if not isinstance(obj, Global):
        return None
    return _global_model(obj.module, obj.name)


@functools.lru_cache(maxsize=1024)
def _global_model(module: str, name: str) -> _Model | None:
    """The model of a global: it depends on the name only (cached: a file may name one global millions of times)."""
    obj = Global(module, name)
    q = obj.qualname
    real: Any = None
    if obj.module == "builtins" and global_kind(obj) in ("class", "function"):
        real = builtin_object(obj.name)
    elif q in ("collections.OrderedDict", "collections.Counter"):
        real = getattr(collections, obj.name)
    elif q == "_codecs.encode":
        real = _codecs.encode
    elif q in ("torch.Size", "torch.device"):  # C classes: no __setstate__, immutable
        return _Model(q, dict_mode="readonly")
    elif q in TORCH_CLASSES and "Storage" not in q:  # tensor classes: Tensor.__setstate__, unbound here
        return _Model(q, setstate="unbound", dict_mode="readonly")
    elif q in TORCH_FUNCTIONS:  # Python functions: a writable __dict__, attributes can be set
        return _Model(q, dict_mode="writable", settable=True)
    elif q in OBJECTS:
        if q.startswith("__future__."):  # _Feature instances: a Python class without __setstate__
            return _Model(q, dict_mode="writable", settable=True, callable_=False)
        return _Model(q, callable_=False)  # torch.dtype / torch.qscheme: C objects, no __dict__
    if real is None:
        return None
    if not isinstance(real, type):  # a builtin function
        return _Model(q)
    setstate = "unbound" if getattr(real, "__setstate__", None) is not None else ""
    return _Model(q, setstate=setstate, dict_mode="readonly", settable=not real.__flags__ & _IMMUTABLE_TYPE)


def _instance(call: Call) -> _Model | None:
    """A builtin class's instance (``type(...)``, whose result is a class, aside). BUILD may have given it
    attributes: ``extend``, ``append`` and ``add`` are looked up on the instance, so a state that may name
    them leaves those unknown (item assignment and calls go through the class)."""
    f = call.func
    if not isinstance(f, Global) or call.items or call.dictitems:
        return None
    if f.qualname in ("torch.Size", "torch.device"):  # C classes (Size: a tuple) with no state of their own
        return _Model(f"{f.qualname} instance", callable_=False)
    if f.module != "builtins":
        return None
    cls = builtin_object(f.name)
    if not isinstance(cls, type) or issubclass(cls, type):
        return None
    setstate = getattr(cls, "__setstate__", None)
    setstate_kind = "" if setstate is None else "exception" if setstate is BaseException.__setstate__ else "other"
    has_dict = cls.__dictoffset__ != 0
    methods = _methods(cls)
    if has_dict and not _names_plainly(call.state):
        methods |= {"extend", "append", "add"}  # a state only running the file could give: maybe
    elif has_dict:
        methods |= _state_names(call.state) & {"extend", "append", "add"}
    return _Model(f"{f.qualname} instance", setstate=setstate_kind, dict_mode="writable" if has_dict else "none",
                  settable=has_dict, methods=frozenset(methods),
                  callable_=any("__call__" in vars(k) for k in cls.__mro__ if k is not object))


def _state_names(state: Any) -> set[str]:
    """The attribute names a BUILD state (dict, or (dict, slot-state dict)) sets."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    return {k for p in parts if isinstance(p, dict) for k in p if isinstance(k, str)}


def _names_plainly(state: Any) -> bool:
    """Whether the attribute names a state sets are all known (None, or plain dicts)."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    return all(p is None or isinstance(p, dict) for p in parts)


def build_error(target: Any, state: Any) -> str | None:
    """Why BUILD of ``state`` on ``target`` raises in CPython (``load_build``); None where it goes on or
    where only running the file could tell (``print()`` is None, a state a call returned may be too)."""
    m = _model(target)
    if m is None or m.setstate == "other":
        return None
    if m.setstate == "unbound":
        return f"BUILD calls {m.what}.__setstate__ unbound" if isinstance(state, PLAIN) else None
    if m.setstate == "exception":  # BaseException.__setstate__: None, or a dict of attribute names
        if state is None or not isinstance(state, PLAIN):
            return None
        if not isinstance(state, dict):
            return "BUILD state is not a dictionary"
        if any(type(k) is not str for k in state):
            return f"BUILD sets a non-str attribute on a {m.what}"
        return None  # (args, __cause__ … have setters of their own: read on)
    slotstate: Any = None
    has_slots = isinstance(state, tuple) and len(state) == 2
    if has_slots:
        state, slotstate = state
    if state is not None:
        if not isinstance(state, PLAIN):
            return None
        if not isinstance(state, dict):
            return "BUILD state is not a dictionary"
        if m.dict_mode == "none":
            return f"BUILD on a {m.what} (no __dict__)"
        if state and m.dict_mode == "readonly":
            return f"BUILD on {m.what}: its __dict__ is a read-only mappingproxy"
    if has_slots and isinstance(slotstate, PLAIN):
        if not isinstance(slotstate, dict):
            return "BUILD slot state is not a dictionary"
        if slotstate and not m.settable:
            return f"BUILD sets attributes on a {m.what}"
        if any(type(k) is not str for k in slotstate):
            return "BUILD slot state has a non-str attribute name"  # setattr (special names: read on)
    return None


def items_error(target: Any, opcode: str) -> str | None:
    """Why APPEND(S), SETITEM(S) or ADDITEMS with something to add raises on ``target``: no
    ``extend``/``append``, no item assignment, no ``add`` (a class's own are unbound and need an
    instance: they raise too)."""
    if isinstance(target, PLAIN):
        return None  # the containers' own rules (pickleitems)
    m = _model(target)
    if m is None:
        return None
    unbound = isinstance(target, Global)
    need = {"APPEND": ("extend", "append"), "APPENDS": ("extend", "append"), "SETITEM": ("__setitem__",),
            "SETITEMS": ("__setitem__",), "ADDITEMS": ("add",)}[opcode]
    if unbound or not any(n in m.methods for n in need):
        return f"{opcode} on {m.what} (no {' or '.join(need)})"
    return None


def call_error(func: Any) -> str | None:
    """Why REDUCE/OBJ calling ``func`` raises: an object that is not callable (a builtin class's instance
    without ``__call__``, a dtype, a ``__future__`` feature, a tensor or storage torch rebuilt)."""
    if isinstance(func, (TensorStub, Storage)):
        return f"a {'tensor' if isinstance(func, TensorStub) else 'storage'} is not callable (TypeError)"
    if isinstance(func, (Call, Global)):
        m = _model(func)
        if m is not None and not m.callable:
            return f"{m.what} is not callable (TypeError)"
    return None


def state_detail(state: Any) -> str:
    """BUILD's state type, with ``:0``/``:1`` for its truth value where a plain value has one
    (torch's pure-Python unpickler skips a falsy state; CPython's C unpickler needs None or a dict)."""
    name = type(state).__name__
    if state is None or not isinstance(state, PLAIN):
        return name
    return f"{name}:{int(bool(state))}"
