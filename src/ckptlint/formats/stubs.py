"""Stand-in values the static unpickler builds instead of real objects.

A global becomes a :class:`Global` (never imported), a call a :class:`Call`
record (never made), and the torch pieces a checkpoint is made of become
:class:`Storage` and :class:`TensorStub` records carrying only metadata.
"""

from __future__ import annotations

import builtins
import types
from typing import Any

from .dtypes import ITEMSIZE, STORAGE_DTYPES, TORCH_DTYPE_ALIASES


class Global:
    """Stand-in for ``module.name``: never the real object."""

    __slots__ = ("module", "name", "offset", "stream")

    def __init__(self, module: str, name: str, stream: str = "", offset: int = -1) -> None:
        self.module = module
        self.name = name
        self.stream = stream
        self.offset = offset

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<global {self.qualname}>"


class Call:
    """A call the real unpickler would make (REDUCE, NEWOBJ, INST, OBJ …)."""

    __slots__ = ("args", "dictitems", "func", "items", "kwargs", "opcode", "state")

    def __init__(self, func: Any, args: tuple[Any, ...], opcode: str, kwargs: Any = None) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.opcode = opcode
        self.state: Any = None
        self.items: list[Any] = []
        self.dictitems: list[tuple[Any, Any]] = []

    @property
    def qualname(self) -> str:
        f = self.func
        return f.qualname if isinstance(f, Global) else f"<call of {type(f).__name__}>"

    def __repr__(self) -> str:
        return f"<call {self.qualname}>"


class ODict(dict):  # type: ignore[type-arg]
    """An OrderedDict (or Counter) the file builds; keeps its ``_metadata``."""

    def __init__(self, qualname: str = "collections.OrderedDict") -> None:
        super().__init__()
        self.qualname = qualname
        self.metadata: Any = None


class Storage:
    """A storage persistent id, decoded."""

    __slots__ = ("dtype", "key", "location", "nbytes", "typed", "view_of", "view_offset")

    def __init__(self, key: str, dtype: str, nbytes: int | None, location: str, typed: bool) -> None:
        self.key = key
        self.dtype = dtype
        self.nbytes = nbytes
        self.location = location
        self.typed = typed
        self.view_of: str | None = None
        self.view_offset = 0


class TensorStub:
    """A tensor some rebuild function would produce."""

    __slots__ = (
        "device", "dtype", "is_parameter", "layout", "offset", "rebuild", "requires_grad", "shape",
        "storage", "stride", "subclass",
    )

    def __init__(self, rebuild: str, storage: Storage | None, offset: int, shape: tuple[int, ...],
                 stride: tuple[int, ...] | None, requires_grad: bool, dtype: str, device: str,
                 layout: str = "strided") -> None:
        self.rebuild = rebuild
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.requires_grad = requires_grad
        self.dtype = dtype
        self.device = device
        self.is_parameter = False
        self.layout = layout
        self.subclass: str | None = None
        """``_rebuild_from_type_v2``'s type when it is neither Tensor nor Parameter (its own ``__setstate__``)."""


_NUMPY_DTYPE_CLASSES = {
    "b1": "BoolDType", "i1": "Int8DType", "u1": "UInt8DType", "i2": "Int16DType", "u2": "UInt16DType",
    "i4": "Int32DType", "u4": "UInt32DType", "i8": "Int64DType", "u8": "UInt64DType",
    "f2": "Float16DType", "f4": "Float32DType", "f8": "Float64DType", "f16": "LongDoubleDType",
    "c8": "Complex64DType", "c16": "Complex128DType", "c32": "CLongDoubleDType", "O8": "ObjectDType",
    "O4": "ObjectDType", "M8": "DateTime64DType", "m8": "TimeDelta64DType",
}


def built_type(call: Call) -> str:
    """The type of the object a call builds, where it differs from the callable (numpy dtypes)."""
    if call.qualname == "numpy.dtype" and call.args and isinstance(call.args[0], str):
        code = call.args[0]
        cls = _NUMPY_DTYPE_CLASSES.get(code) or {"U": "StrDType", "S": "BytesDType", "V": "VoidDType"}.get(code[:1])
        if cls:
            return f"numpy.dtypes.{cls}"
    return call.qualname


def describe(obj: Any) -> str:
    """A neutral name for what an opcode operates on (see ``inventory.Operation.target``)."""
    if isinstance(obj, Global):
        return "global:" + obj.qualname
    if isinstance(obj, Call):
        return "object:" + built_type(obj) if isinstance(obj.func, Global) else "object:" + obj.qualname
    if isinstance(obj, ODict):
        return "object:" + obj.qualname
    if isinstance(obj, TensorStub):
        return "object:torch.nn.parameter.Parameter" if obj.is_parameter else "object:torch.Tensor"
    if isinstance(obj, Storage):
        return "object:torch.storage.TypedStorage" if obj.typed else "object:torch.storage.UntypedStorage"
    return type(obj).__name__


# ---- what some stand-ins are known to be ---------------------------------------------------
# CPython checks a few protocols of the objects an opcode gets: REDUCE and NEWOBJ need a tuple of
# arguments (PyTuple_Check), NEWOBJ_EX a dict of keywords, READONLY_BUFFER the buffer protocol.
# For most globals the real object is unknown (``sys.version_info`` is a tuple, ``pickle.PROTO``
# bytes), so the machine reads on; for the names below it is known in every Python and torch.

_FUNCTIONS_AND_CLASSES = frozenset({
    "os.system", "posix.system", "nt.system", "os.popen", "os.execv", "os.execvp", "os.spawnv", "os.remove",
    "os.path.join", "posixpath.join", "ntpath.join", "subprocess.Popen", "subprocess.run", "subprocess.call",
    "subprocess.check_call", "subprocess.check_output", "subprocess.getoutput", "runpy._run_code",
    "runpy.run_path", "runpy.run_module", "webbrowser.open", "pickle.loads", "pickle.load", "_pickle.loads",
    "_pickle.load", "marshal.loads", "_codecs.encode", "codecs.encode", "copyreg._reconstructor",
    "copyreg.__newobj__", "functools.partial", "operator.attrgetter", "operator.itemgetter",
    "operator.methodcaller", "importlib.import_module", "collections.OrderedDict", "collections.Counter",
    "collections.defaultdict", "collections.UserDict", "collections.deque", "argparse.Namespace", "queue.Queue",
    "numpy.dtype", "numpy.ndarray", "numpy.savetxt", "numpy.load", "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
    "torch.load", "torch.save", "torch.Size", "torch.device", "torch.Tensor", "torch._tensor.Tensor",
    "torch.nn.parameter.Parameter", "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
    "torch.storage._load_from_bytes", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state", "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._tensor._rebuild_from_type_v2", "torch.nn.modules.linear.Linear", "torch.serialization._get_layout",
    *(f"torch.{n}" for n in STORAGE_DTYPES),
    *(f"torch.{n}" for n in (*ITEMSIZE, *TORCH_DTYPE_ALIASES)),  # torch.float32 …: torch.dtype objects
    *(f"__future__.{n}" for n in ("nested_scopes", "generators", "division", "absolute_import", "with_statement",
                                  "print_function", "unicode_literals", "barry_as_FLUFL", "generator_stop",
                                  "annotations")),  # __future__._Feature objects
})
"""Exact globals that are functions, classes or other plain objects: never a tuple, dict or buffer."""

_INSTANCES: dict[str, frozenset[str]] = {
    "collections.OrderedDict": frozenset({"dict"}), "collections.Counter": frozenset({"dict"}),
    "collections.defaultdict": frozenset({"dict"}), "collections.UserDict": frozenset(),
    "collections.deque": frozenset(), "argparse.Namespace": frozenset(), "queue.Queue": frozenset(),
    "subprocess.Popen": frozenset(), "numpy.dtype": frozenset(), "numpy.ndarray": frozenset({"buffer"}),
    "torch.Size": frozenset({"tuple"}), "torch.device": frozenset(), "functools.partial": frozenset(),
    "torch.nn.modules.linear.Linear": frozenset(),
}
"""Classes whose call (REDUCE, NEWOBJ, INST, OBJ) builds an instance of the class, with the protocols
(of tuple, dict, buffer) those instances have."""

_BUFFER_TYPES = (bytes, bytearray, memoryview)


def _builtin(name: str) -> Any:
    """The ``builtins`` object of that name where it is a class, a builtin function or a constant
    (``Ellipsis``), read from this interpreter's module dict (no lookup code runs); else None."""
    v = vars(builtins).get(name)
    if isinstance(v, (type, types.BuiltinFunctionType)) or v is Ellipsis or v is NotImplemented:
        return v
    return None


def _protocols_of_type(cls: type) -> frozenset[str]:
    return frozenset(p for p, t in (("tuple", tuple), ("dict", dict), ("buffer", _BUFFER_TYPES))
                     if issubclass(cls, t))


def known_protocols(obj: Any) -> frozenset[str] | None:
    """Which of ``tuple``, ``dict`` and ``buffer`` the real object behind ``obj`` is (``isinstance``
    for dict and tuple, the buffer protocol), or None when only running the file could tell."""
    if isinstance(obj, Global):
        return frozenset() if obj.qualname in _FUNCTIONS_AND_CLASSES or (
            obj.module == "builtins" and _builtin(obj.name) is not None) else None
    if isinstance(obj, Call):
        f = obj.func
        if not isinstance(f, Global):
            return None
        if f.qualname in _INSTANCES:
            return _INSTANCES[f.qualname]
        cls = _builtin(f.name) if f.module == "builtins" else None
        return _protocols_of_type(cls) if isinstance(cls, type) else None
    if isinstance(obj, (TensorStub, Storage)):
        return frozenset()
    if obj is None or isinstance(obj, (list, set, frozenset, str, int, float, dict, tuple, *_BUFFER_TYPES)):
        return _protocols_of_type(type(obj))
    return None
