"""What some globals are, and what calling them does, where that is known without running the file.

CPython checks what an opcode gets: REDUCE and NEWOBJ need a tuple of arguments (``PyTuple_Check``),
NEWOBJ_EX a dict of keywords, NEWOBJ a class, REDUCE something callable, READONLY_BUFFER a buffer.
For most globals the real object is unknown (``sys.version_info`` is a tuple, ``pickle.PROTO`` bytes),
so the machine reads on past them. For the names here it is known in every Python and torch:

- builtin classes and functions (read from this interpreter's ``builtins`` dict, no lookup code
  runs), ``__future__`` features and torch's dtypes and qschemes (plain objects, not callable), the
  classes and functions torch's weights_only unpickler allows, and a few well-known callables;
- the pure builtins in :data:`PURE_BUILTINS` called on plain values: the call is made, on our
  values, with bounded sizes, and its result (or its exception: the real load raises there) is what
  the file gets;
- torch's rebuild functions, ``torch.Size``, ``torch.device`` and ``_codecs.encode``: arity and
  argument types that make the real call raise.
"""

from __future__ import annotations

import builtins
import collections
import types
from typing import Any

from ..errors import FormatError
from .dtypes import ITEMSIZE, STORAGE_DTYPES, TORCH_DTYPE_ALIASES
from .nestedbytes import codec
from .stubs import Call, Global, Storage, TensorStub, short_repr

PLAIN = (list, dict, set, frozenset, tuple, str, bytes, bytearray, memoryview, int, float, bool, type(None),
         complex, range, slice)
"""Values the machine holds for real: their behaviour under every opcode is CPython's own."""

PURE_BUILTINS = frozenset({"frozenset", "set", "list", "dict", "tuple", "bytes", "bytearray", "str", "int",
                           "float", "complex", "bool", "range", "len", "memoryview"})
"""Builtins that only build or measure data (no I/O, no attribute access, no code of the file), with the same
result in every Python ckptlint supports (``slice`` is not here: slices are hashable from 3.12 on)."""

TORCH_CLASSES = frozenset({
    "torch.Size", "torch.device", "torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter",
    "torch.storage.UntypedStorage", "torch.storage.TypedStorage", "collections.OrderedDict",
    "collections.Counter", *(f"torch.{n}" for n in STORAGE_DTYPES),
    *(f"torch{d}.{t}Tensor" for d in ("", ".cuda", ".sparse", ".cuda.sparse")
      for t in ("BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")),
})
TORCH_FUNCTIONS: dict[str, tuple[int, int]] = {
    "_codecs.encode": (1, 3), "torch._tensor._rebuild_from_type_v2": (4, 4),
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": (4, 4),
    "torch._utils._rebuild_device_tensor_from_numpy": (4, 4),
    "torch._utils._rebuild_meta_tensor_no_storage": (4, 4), "torch._utils._rebuild_nested_tensor": (4, 4),
    "torch._utils._rebuild_parameter": (3, 3), "torch._utils._rebuild_parameter_with_state": (4, 4),
    "torch._utils._rebuild_qtensor": (7, 7), "torch._utils._rebuild_sparse_tensor": (2, 2),
    "torch._utils._rebuild_tensor": (4, 4), "torch._utils._rebuild_tensor_v2": (6, 7),
    "torch._utils._rebuild_tensor_v3": (7, 8), "torch._utils._rebuild_wrapper_subclass": (8, 8),
    "torch.serialization._get_layout": (1, 1),
}
"""The functions torch's weights_only unpickler allows, with their positional arity (torch 2.x)."""

OBJECTS = frozenset({
    *(f"torch.{n}" for n in (*ITEMSIZE, *TORCH_DTYPE_ALIASES)),  # torch.dtype objects
    *(f"torch.{q}" for q in ("per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
                             "per_channel_symmetric", "per_channel_affine_float_qparams")),  # torch.qscheme
    *(f"__future__.{n}" for n in ("nested_scopes", "generators", "division", "absolute_import", "with_statement",
                                  "print_function", "unicode_literals", "barry_as_FLUFL", "generator_stop",
                                  "annotations")),  # __future__._Feature
})
"""Exact globals that are plain objects: not callable, not a class."""

_OPAQUE = frozenset({
    "os.system", "posix.system", "nt.system", "os.popen", "os.execv", "os.execvp", "os.spawnv", "os.remove",
    "os.path.join", "posixpath.join", "ntpath.join", "subprocess.Popen", "subprocess.run", "subprocess.call",
    "subprocess.check_call", "subprocess.check_output", "subprocess.getoutput", "runpy._run_code",
    "runpy.run_path", "runpy.run_module", "webbrowser.open", "pickle.loads", "pickle.load", "_pickle.loads",
    "_pickle.load", "marshal.loads", "codecs.encode", "copyreg._reconstructor", "copyreg.__newobj__",
    "functools.partial", "operator.attrgetter", "operator.itemgetter", "operator.methodcaller",
    "importlib.import_module", "collections.defaultdict", "collections.UserDict", "collections.deque",
    "argparse.Namespace", "queue.Queue", "numpy.dtype", "numpy.ndarray", "numpy.savetxt", "numpy.load",
    "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar", "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar", "torch.load", "torch.save", "torch.storage._load_from_bytes",
    "torch.nn.modules.linear.Linear",
})
"""Well-known functions and classes: never a tuple, dict or buffer. Whether each is a class is not
tracked (NEWOBJ on them reads on: a superset)."""

_INSTANCES: dict[str, frozenset[str]] = {
    "collections.OrderedDict": frozenset({"dict"}), "collections.Counter": frozenset({"dict"}),
    "collections.defaultdict": frozenset({"dict"}), "collections.UserDict": frozenset(),
    "collections.deque": frozenset(), "argparse.Namespace": frozenset(), "queue.Queue": frozenset(),
    "subprocess.Popen": frozenset(), "numpy.dtype": frozenset(), "numpy.ndarray": frozenset({"buffer"}),
    "torch.Size": frozenset({"tuple"}), "torch.device": frozenset(), "functools.partial": frozenset(),
    "torch.nn.modules.linear.Linear": frozenset(),
}
"""Classes whose call builds an instance of the class, with the protocols (of tuple, dict, buffer)
those instances have."""

_NEEDS_DATA = frozenset({"len", "list", "tuple", "set", "frozenset", "dict", "bytes", "bytearray", "int", "float",
                         "complex"})
"""Pure builtins whose first argument must be data (sized, iterable, a number or a buffer)."""

_ARITY: dict[str, tuple[int, int]] = {
    **{f"builtins.{n}": (0, 1) for n in ("frozenset", "set", "list", "tuple", "float", "bool", "dict")},
    **{f"builtins.{n}": (0, 3) for n in ("bytes", "bytearray", "str")}, "builtins.int": (0, 2),
    "builtins.complex": (0, 2), "builtins.range": (1, 3), "builtins.slice": (1, 3), "builtins.len": (1, 1),
    "builtins.memoryview": (1, 1), "collections.OrderedDict": (0, 1), "collections.Counter": (0, 1),
}
"""Positional arity of the pure builtins and the dict classes, whatever their arguments are."""

_BUFFER_TYPES = (bytes, bytearray, memoryview)
UNKNOWN = object()
"""What :func:`known_call` returns when only running the file could tell."""


def builtin_object(name: str) -> Any:
    """The ``builtins`` object of that name where it is a class, a builtin function or a constant
    (``Ellipsis``), read from this interpreter's module dict; else None."""
    v = vars(builtins).get(name)
    if isinstance(v, (type, types.BuiltinFunctionType)) or v is Ellipsis or v is NotImplemented:
        return v
    return None


def global_kind(g: Global) -> str | None:
    """``class``, ``function`` or ``object`` (neither) for the globals above; None when unknown."""
    q = g.qualname
    if g.module == "builtins":
        v = builtin_object(g.name)
        if v is None:
            return None
        if isinstance(v, type) or g.name in PURE_BUILTINS:
            return "class" if isinstance(v, type) else "function"
        # eval, getattr …: NEWOBJ on them raises in CPython, but the machine reads on (a superset)
        return "opaque" if callable(v) else "object"
    if q in TORCH_CLASSES:
        return "class"
    if q in TORCH_FUNCTIONS:
        return "function"
    if q in OBJECTS:
        return "object"
    return "opaque" if q in _OPAQUE else None


def _protocols_of_type(cls: type) -> frozenset[str]:
    return frozenset(p for p, t in (("tuple", tuple), ("dict", dict), ("buffer", _BUFFER_TYPES))
                     if issubclass(cls, t))


_TUPLE = frozenset({"tuple"})


def known_protocols(obj: Any) -> frozenset[str] | None:
    """Which of ``tuple``, ``dict`` and ``buffer`` the real object behind ``obj`` is (``isinstance``
    for dict and tuple, the buffer protocol), or None when only running the file could tell."""
    if type(obj) is tuple:
        return _TUPLE
    if isinstance(obj, Global):
        return None if global_kind(obj) is None else frozenset()
    if isinstance(obj, Call):
        f = obj.func
        if not isinstance(f, Global):
            return None
        if f.qualname in _INSTANCES:
            return _INSTANCES[f.qualname]
        cls = builtin_object(f.name) if f.module == "builtins" else None
        return _protocols_of_type(cls) if isinstance(cls, type) else None
    if isinstance(obj, (TensorStub, Storage)):
        return frozenset()
    if isinstance(obj, PLAIN):
        return _protocols_of_type(type(obj))
    return None


def known_call(func: Global, args: Any, opcode: str, kwargs: Any = None) -> Any:
    """What calling ``func`` (REDUCE, INST, OBJ) or ``func.__new__`` (NEWOBJ, NEWOBJ_EX) gives, where
    known: raises FormatError where the real call raises; UNKNOWN where only running it could tell."""
    kind = global_kind(func)
    if kind == "object":
        raise FormatError(f"{func.qualname} is not callable (TypeError)")
    if kind == "function" and opcode in ("NEWOBJ", "NEWOBJ_EX"):
        raise FormatError(f"{opcode} class argument {func.qualname} isn't a type")
    if type(args) is not tuple:
        return UNKNOWN  # arguments only running the file could give (a global, a call's result)
    arity = _ARITY.get(func.qualname)
    if arity and opcode not in ("NEWOBJ", "NEWOBJ_EX") and args and not arity[0] <= len(args) <= arity[1]:
        raise FormatError(f"{func.qualname}() takes {arity[0]}-{arity[1]} positional arguments, not {len(args)} "
                          "(TypeError)")  # INST/OBJ without arguments make cls.__new__(cls): no arity
    if func.module == "builtins" and func.name in _NEEDS_DATA and args and isinstance(args[0], Global) \
            and global_kind(args[0]) in ("class", "function", "object") and opcode not in ("NEWOBJ", "NEWOBJ_EX"):
        # a class (metaclass type), a function or a dtype has no len, no items, no number
        raise FormatError(f"builtins.{func.name}() of {args[0].qualname} (TypeError)")
    if func.module == "builtins" and func.name in PURE_BUILTINS:
        return _pure(func, args, opcode, kwargs)
    if not kwargs:
        _check_torch_call(func.qualname, args, opcode)
    return UNKNOWN


def _plain(v: Any, seen: set[int], budget: list[int]) -> bool:
    """A value the machine holds for real all the way down (no stand-in inside), within a node budget and
    64 levels of nesting (iterative: a file may nest lists thousands deep)."""
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        budget[0] -= 1
        if budget[0] < 0 or depth > 64 or not isinstance(x, PLAIN):
            return False
        if isinstance(x, (list, tuple, set, frozenset, dict)) and id(x) not in seen:
            if len(x) > budget[0]:
                return False
            seen.add(id(x))
            stack.extend((y, depth + 1) for y in ([*x.keys(), *x.values()] if isinstance(x, dict) else x))
    return True


_SCALARS = (str, bytes, bytearray, memoryview, int, float, bool, type(None), complex)


def _range_len(r: range) -> int:
    """``len(r)``, which raises OverflowError past a C ssize_t (``range(10**30)``)."""
    return (r.stop - r.start) // r.step if r.step > 0 else (r.start - r.stop) // -r.step


def _pure(func: Global, args: tuple[Any, ...], opcode: str, kwargs: Any) -> Any:
    """Make the call on our own values where that is bounded: sizes (``bytes(10**12)``), repr-like
    conversions of containers (``str`` of a nested tuple can be exponentially long), unknown codecs."""
    if opcode == "NEWOBJ_EX" and not isinstance(kwargs, dict):
        return UNKNOWN
    kw = kwargs if isinstance(kwargs, dict) else {}
    if not _plain((args, kw), set(), [4096]) or not all(isinstance(k, str) for k in kw):
        return UNKNOWN
    name = func.name
    values = [*args, *kw.values()]
    if name == "str" and values and not isinstance(values[0], _SCALARS):
        return UNKNOWN
    if any(type(a) is int and a > 1 << 20 for a in values) and name in ("bytes", "bytearray"):
        return UNKNOWN
    if any(isinstance(a, str) for a in values[1:]) and name in ("str", "bytes", "bytearray"):
        enc = values[1] if len(values) > 1 else ""
        if isinstance(enc, str) and enc.lower().replace("_", "-") not in ("utf-8", "utf8", "ascii", "latin-1",
                                                                           "latin1"):
            return UNKNOWN  # an unknown codec name makes codecs import a module
    if name in ("int", "str", "float", "complex") and any(
            (isinstance(a, (str, bytes, bytearray)) and len(a) > 4000) or (type(a) is int and a.bit_length() > 13_000)
            for a in values):
        return UNKNOWN  # Python 3.11 refuses int <-> str conversions past 4,300 digits, 3.10 does not
    if any(isinstance(a, range) and _range_len(a) > 1 << 16 for a in values) \
            or any(isinstance(a, (str, bytes, bytearray, list, tuple, dict, set, frozenset)) and len(a) > 1 << 20
                   for a in values) \
            or hash_cost([x for a in values if isinstance(a, (list, tuple, set, frozenset, dict)) for x in a],
                         1 << 20) > 1 << 20:
        return UNKNOWN  # bounded: no list('x' * 10**8), no hashing a tuple DAG of 2**40 nodes
    cls: Any = getattr(builtins, name)
    try:
        if opcode in ("NEWOBJ", "NEWOBJ_EX"):
            return cls.__new__(cls, *args, **kw)
        if opcode in ("INST", "OBJ") and not args and name != "len":
            return cls.__new__(cls)  # instantiate(): no arguments, a class: cls.__new__(cls)
        return cls(*args)
    except Exception as e:  # noqa: BLE001 - the real load raises the same error at this opcode
        raise FormatError(f"builtins.{name}(...) raises {type(e).__name__}: {str(e)[:80]}") from None


def _check_torch_call(qualname: str, args: tuple[Any, ...], opcode: str) -> None:
    """Argument checks of torch's allowlisted callables that make a real call raise."""
    if opcode in ("NEWOBJ", "NEWOBJ_EX") and qualname not in ("torch.Size", "torch.device"):
        return  # cls.__new__ (torch.Size's and torch.device's are their constructors): not the checks below
    arity = TORCH_FUNCTIONS.get(qualname)
    if arity and not arity[0] <= len(args) <= arity[1]:
        raise FormatError(f"{qualname}() takes {arity[0]}-{arity[1]} arguments, not {len(args)} (TypeError)")
    if qualname.startswith("torch._utils._rebuild_tensor") or qualname == "torch._utils._rebuild_qtensor":
        if args and isinstance(args[0], PLAIN):  # _rebuild_tensor reads storage.dtype first
            raise FormatError(f"{qualname}: the storage is a {type(args[0]).__name__} (AttributeError)")
    elif qualname in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state") \
            and len(args) >= 2:
        _check_parameter(args[0], args[1])
    elif qualname == "_codecs.encode":
        _check_encode(args)
    elif qualname == "torch.Size":
        _check_size(args)
    elif qualname == "torch.device":
        _check_device(args)
    elif qualname in ("collections.OrderedDict", "collections.Counter") and args and _plain(args, set(), [4096]) \
            and all(len(a) <= 1 << 20 for a in args if hasattr(a, "__len__")) \
            and hash_cost([x for a in args if isinstance(a, (list, tuple, set, frozenset, dict)) for x in a],
                          1 << 20) <= 1 << 20:
        try:
            getattr(collections, qualname.rsplit(".", 1)[1])(*args)
        except Exception as e:  # noqa: BLE001 - the real load raises the same error here
            raise FormatError(f"{qualname}(...) raises {type(e).__name__}: {str(e)[:80]}") from None


def _check_encode(args: tuple[Any, ...]) -> None:
    """``_codecs.encode(obj, encoding='utf-8', errors='strict')``: encoding and errors must be str; a text
    codec needs a str to encode (bytes-to-bytes codecs such as ``zlib`` take bytes)."""
    for a in args[1:]:
        if isinstance(a, PLAIN) and not isinstance(a, str):
            raise FormatError(f"_codecs.encode: argument is a {type(a).__name__}, not str (TypeError)")
    info = codec(args[1] if len(args) > 1 else "utf-8")
    if info is None and isinstance(args[1] if len(args) > 1 else "utf-8", str):
        # codecs.lookup raises LookupError: no standard-library codec has this name (a process could register
        # one with codecs.register; torch and CPython do not)
        raise FormatError(f"_codecs.encode: unknown encoding {short_repr(args[1], 40)} (LookupError)")
    if info is not None and getattr(info, "_is_text_encoding", True) and isinstance(args[0], PLAIN) \
            and not isinstance(args[0], str):
        raise FormatError(f"_codecs.encode of a {type(args[0]).__name__} with {info.name} (TypeError)")


def _check_parameter(data: Any, requires_grad: Any) -> None:
    """``torch.nn.Parameter(data, requires_grad)``: None or a plain tensor goes to ``_make_subclass``, which
    needs a bool; any other plain value has no ``detach`` (AttributeError)."""
    if isinstance(data, PLAIN) and data is not None:
        raise FormatError(f"torch.nn.Parameter of a {type(data).__name__} (AttributeError: no detach)")
    plain_tensor = data is None or (isinstance(data, TensorStub) and data.subclass is None)
    if plain_tensor and isinstance(requires_grad, PLAIN) and type(requires_grad) is not bool:
        raise FormatError("torch.nn.Parameter: requires_grad must be a bool (TypeError)")


def _check_size(args: tuple[Any, ...]) -> None:
    """``torch.Size(x)``: at most one argument, an iterable of ints that fit in 64 bits."""
    if len(args) > 1:
        raise FormatError("torch.Size takes at most 1 argument (TypeError)")
    if not args or not _plain(args, set(), [4096]):
        return
    try:
        items = tuple(args[0])
    except TypeError as e:
        raise FormatError(f"torch.Size: {e} (TypeError)") from None
    for x in items:
        if not isinstance(x, int) or not -(1 << 63) <= x < 1 << 63:
            raise FormatError(f"torch.Size takes an iterable of int, not {type(x).__name__}")


def _check_device(args: tuple[Any, ...]) -> None:
    """``torch.device(type_or_index[, index])``: a str/bytes type or a non-negative int, then an int or None."""
    if not 1 <= len(args) <= 2:
        raise FormatError(f"torch.device takes 1 or 2 arguments, not {len(args)} (TypeError)")
    first = args[0]
    if isinstance(first, PLAIN) and (isinstance(first, bool) or not isinstance(first, (str, bytes, int))):
        raise FormatError(f"torch.device of a {type(first).__name__} (TypeError)")
    if isinstance(first, (str, bytes)):
        _check_device_string(first.decode("ascii", "replace") if isinstance(first, bytes) else first)
    if type(first) is int and (first < 0 or len(args) > 1):
        raise FormatError("torch.device: a negative index, or an index after an index (RuntimeError)")
    if len(args) == 2 and isinstance(args[1], PLAIN) and not (args[1] is None or type(args[1]) is int):
        raise FormatError(f"torch.device: the index is a {type(args[1]).__name__} (TypeError)")


_DEVICE_TYPES = frozenset({"cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga",
                           "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone"})
"""The device types ``torch.device`` parses (its error message lists them)."""

_EXTENSION_DEVICE_TYPES = frozenset({"npu", "mlu", "musa", "gcu", "dipu", "sdaa", "tpu", "ixpu", "cnrt", "aiu",
                                     "openreg", "foo"})
"""Names extensions give the ``privateuseone`` backend (``torch.utils.rename_privateuse1_backend``:
``npu`` for Ascend, ``mlu`` for Cambricon …): in a process that imported one, such a device parses."""


def _check_device_string(text: str) -> None:
    """``torch.device("type[:index]")``: empty, a type no stock torch or known extension has, or a known
    type with an index that is not a plain decimal (``cpu:x``, ``cpu:01``, ``cpu:``) raises RuntimeError."""
    kind, colon, index = text.partition(":")
    if kind in _EXTENSION_DEVICE_TYPES:
        return
    if not text or kind not in _DEVICE_TYPES or (colon and not (index == "0" or (
            index[:1] in "123456789" and index.isdigit() and index.isascii()))):
        raise FormatError(f"torch.device: invalid device string {text[:40]!r} (RuntimeError)")


_HASH_DEPTH = 10_000
"""Nesting beyond which CPython's recursive tuple hash (no recursion guard in C) may overflow the C stack."""


def hash_cost(values: Any, cap: int) -> int:
    """How many nodes Python's ``hash`` visits for each of ``values``: a tuple's hash recurses into its items
    every time (no cache; strings, numbers and frozensets cache theirs or are flat), so a DAG of n shared
    tuples costs 2**n. Counted over the tuple tree with a memo per tuple, stopping soon after ``cap``; a tuple
    nested deeper than ``_HASH_DEPTH`` costs more than any cap (hashing it can crash the interpreter)."""
    memo: dict[int, tuple[int, int]] = {}
    total = 0
    for v in values:
        if type(v) is not tuple:
            total += 1
            continue
        stack: list[tuple[tuple[Any, ...], bool]] = [(v, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in memo:
                continue
            if done:
                kids = [memo[id(c)] for c in node if type(c) is tuple]
                size = 1 + len(node) - len(kids) + sum(k[0] for k in kids)
                depth = 1 + max((k[1] for k in kids), default=0)
                memo[id(node)] = (min(cap + 1, size), depth)
                if depth > _HASH_DEPTH:
                    return cap + 1
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in node if type(c) is tuple and id(c) not in memo)
        total += memo[id(v)][0]
        if total > cap:
            break
    return total
