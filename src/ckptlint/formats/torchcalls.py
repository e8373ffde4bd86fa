"""What the calls a checkpoint makes stand for, interpreted by our code, never made.

Only a fixed set of callables is interpreted: torch's rebuild functions (so
tensors come out as :class:`TensorStub` records), plain containers, and the
byte-string codecs a file may use to hide a pickle inside a pickle (so the
inner pickle can be scanned, decoded the way the file itself decodes it).
Everything else stays a :class:`Call` record.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import CallRaises, FormatError
from ..limits import Budget
from .dtypes import ITEMSIZE, STORAGE_DTYPES, torch_dtype_name
from .knowncalls import PLAIN, UNKNOWN, global_kind, hash_cost, known_call
from .nestedbytes import DECODERS, NESTED_LOADERS, decoded
from .stubs import Call, Global, ODict, Storage, TensorStub, new_tensor_stub, short_repr


def _int_tuple(v: Any, what: str) -> tuple[int, ...]:
    """Sizes and strides as torch accepts them: ints, none negative."""
    if isinstance(v, (tuple, list)):
        for x in v:
            if type(x) is not int or x < 0:
                raise FormatError(f"tensor {what} is not a tuple of non-negative ints")
        return tuple(v)
    raise FormatError(f"tensor {what} is not a tuple of ints")


def _as_int(v: Any, what: str) -> int:
    if type(v) is int:
        return v
    raise FormatError(f"tensor {what} is not an int")


def _dtype_of(v: Any) -> str:
    if isinstance(v, Global) and v.module == "torch":
        name = torch_dtype_name(v.name)
        if name:
            return name
    raise FormatError("tensor dtype is not a torch dtype")


def _device_of(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, Call) and isinstance(v.func, Global) and v.func.qualname == "torch.device":
        a = v.args
        if len(a) == 1 and isinstance(a[0], str):
            return a[0]
        if len(a) == 2 and isinstance(a[0], str) and type(a[1]) is int:
            return f"{a[0]}:{a[1]}"
    return "unknown"


def _bool(v: Any) -> bool:
    return bool(v) if isinstance(v, (bool, int)) else False


# ---- torch's rebuild functions, from their documented argument order ----------

def _rebuild_tensor_v2(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 4 or not isinstance(args[0], Storage):
        raise FormatError(f"{fname}: malformed arguments")
    _check_set_args(fname, args[1], args[2], args[3])
    st: Storage = args[0]
    dtype = st.dtype
    if fname == "_rebuild_tensor_v3":
        if len(args) < 7:
            raise FormatError(f"{fname}: malformed arguments")
        dtype = _dtype_of(args[6])
    requires_grad = _bool(args[4]) if len(args) > 4 else False
    t = TensorStub(fname, st, _as_int(args[1], "offset"), _int_tuple(args[2], "size"),
                   _int_tuple(args[3], "stride"), requires_grad, dtype, st.location)
    _check_fits(t, st)
    if fname != "_rebuild_tensor" and len(args) > 4:
        _check_tensor_extras(fname, args[4], args[7 if fname == "_rebuild_tensor_v3" else 6]
                             if len(args) > (7 if fname == "_rebuild_tensor_v3" else 6) else None, dtype)
    return t


_NO_GRAD_DTYPES = ("bool", "int", "uint", "qint", "quint")


def rebuild_tensor_v2_plain(args: tuple[Any, ...]) -> TensorStub | None:
    """``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` as ``torch.save``
    writes it (ints, tuples of ints, a bool): what :func:`interpret_call` gives, without its general
    checks (none of which can fire on this shape). None for any other shape (the general path's)."""
    if len(args) != 6:
        return None
    st, offset, size, stride, requires_grad, _ = args
    if type(st) is not Storage or type(offset) is not int or offset < 0 or type(size) is not tuple \
            or type(stride) is not tuple or len(size) != len(stride) or type(requires_grad) is not bool:
        return None
    # the last element's index + 1 (the sizes and strides checked in the same pass); one and two
    # dimensions written out (a state_dict's weights and biases: no zip object and loop per tensor)
    ndim = len(size)
    if ndim == 2:
        n, n1 = size
        s, s1 = stride
        if type(n) is not int or n < 0 or type(s) is not int or s < 0 \
                or type(n1) is not int or n1 < 0 or type(s1) is not int or s1 < 0:
            return None
        extent = offset + 1 + s * (n - 1) + s1 * (n1 - 1)
    elif ndim == 1:
        n, = size
        s, = stride
        if type(n) is not int or n < 0 or type(s) is not int or s < 0:
            return None
        extent = offset + 1 + s * (n - 1)
    else:
        extent = offset + 1
        for n, s in zip(size, stride, strict=True):  # equal lengths (checked above)
            if type(n) is not int or n < 0 or type(s) is not int or s < 0:
                return None
            extent += s * (n - 1)
    dtype = st.dtype
    if requires_grad and dtype.startswith(_NO_GRAD_DTYPES):
        return None  # the general path raises
    t = new_tensor_stub("_rebuild_tensor_v2", st, offset, size, stride, requires_grad, dtype, st.location)
    nbytes = st.nbytes
    if not st.resizable and nbytes is not None and ITEMSIZE.get(dtype, 1 << 62) * extent > nbytes:
        _check_fits(t, st)  # raises where the view does not fit (and decides the cases it skips)
    return t


def _check_tensor_extras(fname: str, requires_grad: Any, metadata: Any, dtype: str) -> None:
    """``tensor.requires_grad = requires_grad`` (a bool; True only for floating and complex dtypes),
    then ``set_tensor_metadata`` of a truthy metadata (asserts a dict)."""
    if isinstance(requires_grad, PLAIN) and type(requires_grad) is not bool:
        raise CallRaises(f"{fname}: requires_grad must be a bool (RuntimeError)")
    if requires_grad is True and (dtype == "bool" or dtype.startswith(("int", "uint", "qint", "quint"))):
        raise CallRaises(f"{fname}: a {dtype} tensor cannot require gradients (RuntimeError)")
    if isinstance(metadata, PLAIN) and metadata and not isinstance(metadata, dict):
        raise CallRaises(f"{fname}: metadata is a {type(metadata).__name__}, not a dict (AssertionError)")


def _check_set_args(fname: str, offset: Any, size: Any, stride: Any) -> None:
    """``Tensor.set_(storage, offset, size, stride)``'s argument parsing on plain values: an int offset of at
    least 0, size a list or tuple of non-negative ints, stride one of ints (or None), as long as size."""
    def bad(v: Any) -> bool:  # a plain value that is not an int (bool and float are refused too)
        return isinstance(v, PLAIN) and (type(v) is not int)
    if bad(offset) or (type(offset) is int and offset < 0):
        raise CallRaises(f"{fname}: Tensor.set_ refuses the storage offset {short_repr(offset, 40)}")
    for what, seq in (("size", size), ("stride", stride)):
        if seq is None and what == "stride":
            continue
        if isinstance(seq, PLAIN) and not isinstance(seq, (list, tuple)):
            raise CallRaises(f"{fname}: Tensor.set_ refuses a {type(seq).__name__} {what}")
        if isinstance(seq, (list, tuple)) and any(bad(x) or (what == "size" and type(x) is int and x < 0)
                                                  for x in seq):
            raise CallRaises(f"{fname}: Tensor.set_ refuses the {what} {short_repr(seq, 40)}")
    if isinstance(size, (list, tuple)) and isinstance(stride, (list, tuple)):
        if len(size) != len(stride):
            raise CallRaises(f"{fname}: Tensor.set_: unequal size length ({len(size)}) and stride length "
                             f"({len(stride)})")
        if any(type(n) is int and type(st) is int and n > 1 and st < 0 for n, st in zip(size, stride, strict=True)):
            raise CallRaises(f"{fname}: Tensor.set_: a negative stride over a dimension longer than 1 "
                             "(storage size calculation overflowed)")


def _check_fits(t: TensorStub, st: Storage) -> None:
    """``Tensor.set_`` grows a storage too small for the view (``computeStorageNbytes``); a zip record's
    storage is not resizable: "Trying to resize storage that is not resizable" (RuntimeError)."""
    if st.resizable or st.nbytes is None or t.stride is None or len(t.stride) != len(t.shape) \
            or t.dtype not in ITEMSIZE or 0 in t.shape:
        return
    need = ITEMSIZE[t.dtype] * (t.offset + 1 + sum(s * (n - 1) for n, s in zip(t.shape, t.stride, strict=True)))
    if need > st.nbytes:
        raise CallRaises(f"{t.rebuild}: the view needs {need} bytes, storage {st.key!r} holds {st.nbytes} "
                         "and a zip record's storage is not resizable (RuntimeError)")


def _rebuild_qtensor(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 4 or not isinstance(args[0], Storage):
        raise FormatError(f"{fname}: malformed arguments")
    st = args[0]
    rg = _bool(args[5]) if len(args) > 5 else False
    return TensorStub(fname, st, _as_int(args[1], "offset"), _int_tuple(args[2], "size"),
                      _int_tuple(args[3], "stride"), rg, st.dtype, st.location)


def _rebuild_meta(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 3:
        raise FormatError(f"{fname}: malformed arguments")
    rg = _bool(args[3]) if len(args) > 3 else False
    return TensorStub(fname, None, 0, _int_tuple(args[1], "size"), _int_tuple(args[2], "stride"),
                      rg, _dtype_of(args[0]), "meta")


def _rebuild_device_from(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 3:
        raise FormatError(f"{fname}: malformed arguments")
    data = args[0]
    shape = data.shape if isinstance(data, TensorStub) else ()
    return TensorStub(fname, data.storage if isinstance(data, TensorStub) else None, 0, shape,
                      data.stride if isinstance(data, TensorStub) else None,
                      _bool(args[3]) if len(args) > 3 else False, _dtype_of(args[1]), _device_of(args[2]))


def _rebuild_wrapper_subclass(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 8:
        raise FormatError(f"{fname}: malformed arguments")
    return TensorStub(fname, None, _as_int(args[4], "offset"), _int_tuple(args[2], "size"),
                      _int_tuple(args[3], "stride"), _bool(args[7]), _dtype_of(args[1]), _device_of(args[6]))


def _rebuild_sparse(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 2 or not isinstance(args[1], tuple) or not args[1]:
        raise FormatError(f"{fname}: malformed arguments")
    layout = args[0].name if isinstance(args[0], Global) else "sparse"
    lay = args[0]  # torch >= 2.1 pickles the layout as torch.serialization._get_layout("torch.sparse_coo")
    if isinstance(lay, Call) and lay.qualname == "torch.serialization._get_layout" \
            and len(lay.args) == 1 and isinstance(lay.args[0], str):
        layout = lay.args[0].removeprefix("torch.")
    data = args[1]
    # values come after the index tensors in every layout (COO: indices, values; CSR…: two index sets, values)
    values = next((d for d in reversed(data) if isinstance(d, TensorStub)), None)
    size = next((d for d in reversed(data) if isinstance(d, (tuple, list))), ())
    return TensorStub(fname, None, 0, _int_tuple(size, "size"), None, False,
                      values.dtype if values else "unknown", values.device if values else "unknown", layout)


def _rebuild_nested(args: tuple[Any, ...], fname: str) -> TensorStub:
    buf = args[0] if args else None
    if not isinstance(buf, TensorStub):
        raise FormatError(f"{fname}: malformed arguments")
    return TensorStub(fname, buf.storage, 0, buf.shape, None, False, buf.dtype, buf.device, "nested")


def _rebuild_parameter(args: tuple[Any, ...], fname: str) -> Any:
    if not args or not isinstance(args[0], TensorStub):
        raise FormatError(f"{fname}: malformed arguments")
    t: TensorStub = args[0]
    t.is_parameter = True
    t.requires_grad = _bool(args[1]) if len(args) > 1 else True
    return t


_REBUILDERS: dict[str, Callable[[tuple[Any, ...], str], Any]] = {
    "_rebuild_tensor": _rebuild_tensor_v2,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v2,
    "_rebuild_qtensor": _rebuild_qtensor,
    "_rebuild_meta_tensor_no_storage": _rebuild_meta,
    "_rebuild_device_tensor_from_cpu_tensor": _rebuild_device_from,
    "_rebuild_device_tensor_from_numpy": _rebuild_device_from,
    "_rebuild_xla_tensor": _rebuild_device_from,
    "_rebuild_wrapper_subclass": _rebuild_wrapper_subclass,
    "_rebuild_sparse_tensor": _rebuild_sparse,
    "_rebuild_nested_tensor": _rebuild_nested,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter,
}

_JIT_LIST_BUILDERS = {"build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                      "build_genericlist"}


def interpret_call(func: Any, args: Any, opcode: str, budget: Budget | None = None, kwargs: Any = None) -> Any:
    """What a REDUCE/NEWOBJ of ``func(*args)`` stands for, without calling the file's code (see
    ``knowncalls`` for the pure builtins made on our own values); FormatError where the real call raises."""
    if isinstance(func, Global):
        known = known_call(func, args, opcode, kwargs)
        if known is not UNKNOWN:
            return known
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    if isinstance(func, Global):
        mod, name = func.module, func.name
        if mod == "torch._utils" and name in _REBUILDERS:
            try:
                return _REBUILDERS[name](args, name)
            except CallRaises:
                raise
            except FormatError:
                return Call(func, args, opcode)  # not a shape we know: keep it as a plain call
        if mod == "torch.storage" and name == "_load_from_bytes" and args and isinstance(args[0], bytes):
            return Storage(f"inline:{zlib.crc32(args[0]):08x}:{len(args[0])}", "unknown", None, "unknown", False)
        if mod == "torch._tensor" and name == "_rebuild_from_type_v2" and len(args) >= 3:
            inner = interpret_call(args[0], args[2], opcode, budget)
            if isinstance(inner, TensorStub) and isinstance(args[1], Global) \
                    and args[1].qualname == "torch.nn.parameter.Parameter":
                inner.is_parameter = True
            elif isinstance(inner, TensorStub):
                cls = args[1].qualname if isinstance(args[1], Global) else type(args[1]).__name__
                inner.subclass = None if cls in ("torch.Tensor", "torch._tensor.Tensor") else cls
            return inner
        if mod == "collections" and name in ("OrderedDict", "Counter") and opcode in ("NEWOBJ", "NEWOBJ_EX"):
            return ODict(func.qualname)  # cls.__new__(cls): an empty one, filled by SETITEMS
        if mod == "collections" and name in ("OrderedDict", "Counter") and opcode == "REDUCE":
            d = ODict(func.qualname)
            if args and isinstance(args[0], (list, tuple)) and hash_cost(
                    [p[0] for p in args[0] if isinstance(p, (list, tuple)) and p], 1 << 20) > 1 << 20:
                return Call(func, args, opcode)  # bounded: keys whose hash would take forever stay unread
            if args and isinstance(args[0], (list, tuple)):
                for pair in args[0]:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2:
                        try:
                            d[pair[0]] = pair[1]
                        except TypeError:
                            return Call(func, args, opcode)
            elif args and isinstance(args[0], dict):
                d.update(args[0])
            return d
        if mod == "builtins" and name in ("set", "frozenset") and len(args) <= 1:
            items = args[0] if args else ()
            if isinstance(items, (list, tuple, set, frozenset)) and hash_cost(items, 1 << 20) <= 1 << 20:
                try:
                    return set(items) if name == "set" else frozenset(items)
                except TypeError:
                    return Call(func, args, opcode)
        if func.qualname in DECODERS:
            raw = decoded(func.qualname, args, budget)
            return Call(func, args, opcode) if raw is None else raw
        if mod == "torch" and name == "Size" and (not args or isinstance(args[0], PLAIN)):
            return tuple(args[0]) if args else ()  # a tuple of ints (knowncalls checked them)
        if mod == "torch.jit._pickle":
            if name in _JIT_LIST_BUILDERS and args and isinstance(args[0], list):
                return args[0]
            if name == "restore_type_tag" and args:
                return args[0]
    return Call(func, args, opcode)


_INTERPRETED_MODULES = frozenset({"torch._utils", "torch.storage", "torch._tensor", "collections", "builtins", "torch",
                                  "torch.jit._pickle"})
"""Modules whose names :func:`interpret_call` (or ``knowncalls``) may treat specially."""
_CHECKED_NAMES = frozenset({
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "_codecs.encode", "torch.Size", "torch.device", "collections.OrderedDict", "collections.Counter"})
"""Qualified names whose arguments ``knowncalls._check_torch_call`` checks."""


@functools.lru_cache(maxsize=4096)
def plain_global(module: str, name: str) -> bool:
    """Whether REDUCE or NEWOBJ of this global on a tuple is only a record, ``Call(func, args, opcode)``, and BUILD
    on it or on that record only keeps the state: no known kind (or only "opaque"), no interpreted call, no argument
    checks, not a loader or decoder. The opcode loop builds those directly; every other name takes the handlers."""
    g = Global(module, name)
    q = g.qualname
    return (global_kind(g) in (None, "opaque") and module not in _INTERPRETED_MODULES and q not in NESTED_LOADERS
            and q not in DECODERS and q not in _CHECKED_NAMES and not q.startswith("torch._utils._rebuild_tensor"))


def _text(v: Any) -> Any:
    """torch's ``_maybe_decode_ascii``: Python 2 files store these strings as bytes."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("ascii", "replace")
    return v


_STORAGE_KINDS = {name: (dtype, name != "UntypedStorage", ITEMSIZE.get(dtype, 1))
                  for name, dtype in STORAGE_DTYPES.items()}
"""Storage class name -> (dtype, typed, bytes per element)."""
STORAGE_KINDS = _STORAGE_KINDS


def storage_from_pid(pid: Any, *, legacy: bool = False) -> Storage:
    """Decode torch's ``('storage', type, key, location, numel[, view])`` persistent id."""
    if not isinstance(pid, tuple) or len(pid) < 5:
        raise FormatError("persistent id is not a torch storage")
    tag = pid[0]
    if tag != "storage" and _text(tag) != "storage":
        raise FormatError("persistent id is not a torch storage")
    stype, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(stype, Global) or type(numel) is not int or numel < 0:
        raise FormatError("malformed storage persistent id")
    kind = _STORAGE_KINDS.get(stype.name)
    if kind is None:
        raise FormatError(f"unknown storage type {stype.qualname}")
    dtype, typed, itemsize = kind
    if type(location) is not str:
        location = _text(location)
        if not isinstance(location, str):
            location = short_repr(location, 200)
    st = Storage(key if isinstance(key, str) else short_repr(key, 200), dtype, numel * itemsize if typed else numel,
                 location, typed)
    if legacy and len(pid) > 5 and isinstance(pid[5], tuple) and len(pid[5]) == 3:
        _view_key, offset, _size = pid[5]
        st.view_of = st.key  # a view of the root storage pid[2] (pid[5][0] only names the view): its bytes are there
        st.view_offset = offset if type(offset) is int else 0
    return st


_BACKEND_TAG = r"(cuda|hpu|xpu|mtia|privateuseone)(:|[0-9]+|$)"
"""Compiled (re's cache) for the first location that is not cpu, meta or mps, not at import (startup)."""


def restorable(location: str) -> bool:
    """Whether a stock torch restores a storage tagged ``location`` on some machine
    (``default_restore_location`` in torch/serialization.py): ``cpu`` and ``meta`` exactly, ``mps…``,
    and the ``cuda``/``hpu``/``xpu``/``mtia``/``privateuseone`` tags (which raise where the device is
    missing). Any other tag raises "don't know how to restore data location" unless the caller
    passes ``map_location`` (or an extension registers the device)."""
    return location in ("cpu", "meta") or location.startswith("mps") or re.match(_BACKEND_TAG, location) is not None


def unrestorable_note(st: Storage, offset: int) -> str | None:
    """A note for a storage torch.load cannot restore without ``map_location`` (see :func:`restorable`)."""
    if restorable(st.location):
        return None
    return (f"storage {st.key[:40]!r} at byte {offset} is tagged {st.location[:40]!r}, a location no torch "
            "backend restores: torch.load raises there (\"don't know how to restore data location\") unless "
            "it is given map_location; ckptlint reads on, as that load does")
