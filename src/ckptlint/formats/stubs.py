"""Stand-in values the static unpickler builds instead of real objects.

A global becomes a :class:`Global` (never imported), a call a :class:`Call`
record (never made), and the torch pieces a checkpoint is made of become
:class:`Storage` and :class:`TensorStub` records carrying only metadata.
"""

from __future__ import annotations

import reprlib
from typing import Any


class Global:
    """Stand-in for ``module.name``: never the real object."""

    __slots__ = ("module", "name", "offset", "plain", "qualname", "stream")

    def __init__(self, module: str, name: str, stream: str = "", offset: int = -1) -> None:
        self.module = module
        self.name = name
        self.stream = stream
        self.offset = offset
        self.qualname = f"{module}.{name}"
        self.plain: bool | None = None
        """Whether calling it is only a record (``torchcalls.plain_global``); None until asked."""

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

    __slots__ = ("metadata", "qualname")  # no instance __dict__: torch.save writes one per tensor (its hooks)

    def __init__(self, qualname: str = "collections.OrderedDict") -> None:
        super().__init__()
        self.qualname = qualname
        self.metadata: Any = None


class Storage:
    """A storage persistent id, decoded."""

    __slots__ = ("dtype", "key", "location", "nbytes", "resizable", "typed", "view_of", "view_offset")

    def __init__(self, key: str, dtype: str, nbytes: int | None, location: str, typed: bool) -> None:
        self.key = key
        self.dtype = dtype
        self.nbytes = nbytes
        self.location = location
        self.typed = typed
        self.view_of: str | None = None
        self.view_offset = 0
        self.resizable = True
        """False for a zip record's storage (``get_storage_from_record``): ``set_`` cannot grow it."""


_new = object.__new__


def new_storage(key: str, dtype: str, nbytes: int | None, location: str, typed: bool, resizable: bool) -> Storage:
    """``Storage(key, dtype, nbytes, location, typed)`` with ``resizable`` set, for the one-per-storage paths:
    a class call runs ``__init__`` from C (a frame of its own); this call does not. The same slots, the same
    values (tests/test_zip_fast_paths.py compares them)."""
    st = _new(Storage)
    st.key = key
    st.dtype = dtype
    st.nbytes = nbytes
    st.location = location
    st.typed = typed
    st.view_of = None
    st.view_offset = 0
    st.resizable = resizable
    return st


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


def new_tensor_stub(rebuild: str, storage: Storage | None, offset: int, shape: tuple[int, ...],
                    stride: tuple[int, ...] | None, requires_grad: bool, dtype: str, device: str) -> TensorStub:
    """``TensorStub(rebuild, storage, offset, shape, stride, requires_grad, dtype, device)``, for the
    one-per-tensor path (see :func:`new_storage`)."""
    t = _new(TensorStub)
    t.rebuild = rebuild
    t.storage = storage
    t.offset = offset
    t.shape = shape
    t.stride = stride
    t.requires_grad = requires_grad
    t.dtype = dtype
    t.device = device
    t.is_parameter = False
    t.layout = "strided"
    t.subclass = None
    return t


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


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 60


def short_repr(v: Any, n: int = 60) -> str:
    """``repr(v)[:n]`` without building the whole repr first: a tuple of 40 DUP'd tuples prints 2**40 items."""
    return _REPR.repr(v)[:n]
