"""A static pickle interpreter: walks the opcodes, never imports, never calls.

Every global the stream names becomes a :class:`Global` stand-in and every call
a :class:`Call` record; only a fixed set of torch rebuild functions and plain
containers are *interpreted* (by our code, from their documented argument
order) so that tensors come out as :class:`TensorStub` records. The stream is
read contiguously, the way CPython's C unpickler (what ``pickle.load`` and
``torch.load(weights_only=False)`` run) reads it: FRAME only announces a length.

Why not subclass ``pickle.Unpickler``: its C memo is sized by the largest PUT
index (one opcode can ask for gigabytes), it reports no byte offsets, and we
would still have to vet every opcode. A dispatch table over bytes is small.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import copyreg
import struct
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Limits
from ..inventory import GlobalRef
from .dtypes import ITEMSIZE, STORAGE_DTYPES, torch_dtype_name

# Opcodes torch's weights_only unpickler accepts (identical in torch 2.6 - 2.14).
WEIGHTS_ONLY_OPCODES = frozenset({
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
    "LONG_BINPUT", "LONG1", "PROTO", "STOP",
})


def map_py2_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names in protocol <= 2 pickles, renamed as the unpickler does (fix_imports)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class TruncatedPickle(FormatError):
    """The stream ended early; a reader holding only part of a file may read more."""


class Global:
    """Stand-in for ``module.name``: never the real object."""

    __slots__ = ("module", "name", "stream", "offset")

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

    __slots__ = ("func", "args", "kwargs", "state", "items", "dictitems", "opcode")

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

    __slots__ = ("key", "dtype", "nbytes", "location", "typed", "view_of", "view_offset")

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
        "rebuild", "storage", "offset", "shape", "stride", "requires_grad",
        "dtype", "device", "is_parameter", "layout",
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


class _Mark:
    pass


PersistentLoad = Callable[[Any], Any]


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


# ---- interpretation of the torch callables a checkpoint is made of ----------

def _rebuild_tensor_v2(args: tuple[Any, ...], fname: str) -> TensorStub:
    if len(args) < 4 or not isinstance(args[0], Storage):
        raise FormatError(f"{fname}: malformed arguments")
    st: Storage = args[0]
    dtype = st.dtype
    if fname == "_rebuild_tensor_v3":
        if len(args) < 7:
            raise FormatError(f"{fname}: malformed arguments")
        dtype = _dtype_of(args[6])
    requires_grad = _bool(args[4]) if len(args) > 4 else False
    return TensorStub(fname, st, _as_int(args[1], "offset"), _int_tuple(args[2], "size"),
                      _int_tuple(args[3], "stride"), requires_grad, dtype, st.location)


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
    stub = TensorStub(fname, data.storage if isinstance(data, TensorStub) else None, 0, shape,
                      data.stride if isinstance(data, TensorStub) else None,
                      _bool(args[3]) if len(args) > 3 else False, _dtype_of(args[1]), _device_of(args[2]))
    return stub


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


def interpret_call(func: Any, args: Any, opcode: str) -> Any:
    """What a REDUCE/NEWOBJ of ``func(*args)`` stands for, without calling anything."""
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    if isinstance(func, Global):
        mod, name = func.module, func.name
        if mod == "torch._utils" and name in _REBUILDERS:
            try:
                return _REBUILDERS[name](args, name)
            except FormatError:
                return Call(func, args, opcode)  # not a shape we know: keep it as a plain call
        if mod == "torch.storage" and name == "_load_from_bytes" and args and isinstance(args[0], bytes):
            return Storage(f"inline:{zlib.crc32(args[0]):08x}:{len(args[0])}", "unknown", None, "unknown", False)
        if mod == "torch._tensor" and name == "_rebuild_from_type_v2" and len(args) >= 3:
            inner = interpret_call(args[0], args[2], opcode)
            if isinstance(inner, TensorStub) and isinstance(args[1], Global):
                if args[1].qualname == "torch.nn.parameter.Parameter":
                    inner.is_parameter = True
            return inner
        if mod == "collections" and name in ("OrderedDict", "Counter") and opcode == "REDUCE":
            d = ODict(func.qualname)
            if args and isinstance(args[0], (list, tuple)):
                for pair in args[0]:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2:
                        d[pair[0]] = pair[1]
            elif args and isinstance(args[0], dict):
                d.update(args[0])
            return d
        if mod == "builtins" and name in ("set", "frozenset") and len(args) <= 1:
            items = args[0] if args else ()
            if isinstance(items, (list, tuple, set, frozenset)):
                return set(items) if name == "set" else frozenset(items)
        if mod == "_codecs" and name == "encode" and args and isinstance(args[0], str):
            return args[0].encode("latin-1", "replace")
        if mod == "torch" and name == "Size" and args and isinstance(args[0], (list, tuple)):
            return tuple(args[0])
        if mod == "torch.jit._pickle":
            if name in _JIT_LIST_BUILDERS and args and isinstance(args[0], list):
                return args[0]
            if name == "restore_type_tag" and args:
                return args[0]
    return Call(func, args, opcode)


# ---- the opcode machine ------------------------------------------------------

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct(">d")


class StaticUnpickler:
    """Interpret one pickle stream starting at ``start`` in ``data``.

    ``persistent_load`` receives each persistent id and returns what stands for
    it (torch storages). After :meth:`load`, ``globals``, ``opcodes``,
    ``protocol``, ``end`` and ``anomalies`` describe the stream.
    """

    def __init__(self, data: bytes, stream: str, *, start: int = 0,
                 persistent_load: PersistentLoad | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.data = data
        self.stream = stream
        self.pos = start
        self.start = start
        self.limits = limits
        self.persistent_load = persistent_load
        self.globals: list[GlobalRef] = []
        self._codes: set[int] = set()
        self.protocol: int | None = None
        self.anomalies: list[str] = []
        self.end = start
        self.max_memo_index = -1
        self._stack: list[Any] = []
        self._metastack: list[list[Any]] = []
        self._memo: dict[int, Any] = {}
        self._op_start = start
        self._frame_end: int | None = None
        self.nested: list[tuple[int, bytes | bytearray]] = []
        """Byte strings handed to a loader (``pickle.loads`` …): pickles inside the pickle."""
        self.wo_events: list[tuple[int, str, str]] = []
        """Where torch's weights_only unpickler would object, besides globals:
        (offset, kind, detail); kinds ending in ``-class`` depend on the allowlist."""

    @property
    def opcodes(self) -> set[str]:
        """Names of the opcodes the stream used."""
        return {_OPCODES[chr(c)] for c in self._codes}

    # -- reading helpers
    def _read(self, n: int) -> bytes:
        p = self.pos
        e = p + n
        if n < 0:
            raise FormatError(f"negative length at byte {self._op_start} ({self.stream})")
        if e > len(self.data):
            raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        self.pos = e
        return self.data[p:e]

    def _readline(self) -> bytes:
        p = self.pos
        e = self.data.find(b"\n", p)
        if e < 0:
            raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        self.pos = e + 1
        return self.data[p:e]

    def _pop_mark(self) -> list[Any]:
        if not self._metastack:
            raise FormatError(f"pickle MARK missing at byte {self._op_start} ({self.stream})")
        items = self._stack
        self._stack = self._metastack.pop()
        return items

    def _pop(self) -> Any:
        if not self._stack:
            raise FormatError(f"pickle stack underflow at byte {self._op_start} ({self.stream})")
        return self._stack.pop()

    def _top(self) -> Any:
        if not self._stack:
            raise FormatError(f"pickle stack underflow at byte {self._op_start} ({self.stream})")
        return self._stack[-1]

    def _memo_put(self, idx: int, value: Any) -> None:
        if idx < 0 or idx > self.limits.max_memo_index:
            raise FormatError(f"pickle memo index {idx} out of bounds at byte {self._op_start} ({self.stream})")
        if idx not in self._memo and len(self._memo) >= self.limits.max_memo:
            raise FormatError(f"pickle memo exceeds {self.limits.max_memo} entries ({self.stream})")
        if idx > self.max_memo_index:
            self.max_memo_index = idx
        self._memo[idx] = value

    def _memo_get(self, idx: int) -> Any:
        try:
            return self._memo[idx]
        except KeyError:
            raise FormatError(f"pickle memo key {idx} missing at byte {self._op_start} ({self.stream})") from None

    def _wo(self, kind: str, detail: str) -> None:
        self.wo_events.append((self._op_start, kind, detail))

    def _global(self, module: str, name: str, opcode: str) -> Global:
        if self.protocol is None or self.protocol < 3:
            module, name = map_py2_name(module, name)
        self.globals.append(GlobalRef(module, name, self.stream, self._op_start, opcode))
        return Global(module, name, self.stream, self._op_start)

    # -- the loop
    def load(self) -> Any:
        data = self.data
        n = len(data)
        dispatch = _DISPATCH
        ops = self._codes
        max_ops = self.limits.max_opcodes
        count = 0
        while True:
            if self.pos >= n:
                raise TruncatedPickle(f"pickle ended without STOP ({self.stream})")
            count += 1
            if count > max_ops:
                raise FormatError(f"pickle exceeds {max_ops} opcodes ({self.stream})")
            start = self._op_start = self.pos
            code = data[start]
            handler = dispatch[code]
            if handler is None:
                raise FormatError(f"invalid pickle opcode 0x{code:02x} at byte {start} ({self.stream})")
            self.pos = start + 1
            if code not in ops:
                ops.add(code)
                if code not in _WO_CODES:
                    self.wo_events.append((start, "opcode", _OPCODES[chr(code)]))
            if handler(self) is _STOP:
                self.end = self.pos
                return self._stack[-1] if self._stack else None
            fe = self._frame_end
            if fe is not None and start < fe < self.pos:
                self.anomalies.append(
                    f"opcode at byte {start} crosses the FRAME boundary at byte {fe}")

    # -- opcode handlers (name after 'op_' is the pickletools name)
    def op_PROTO(self) -> None:
        self.protocol = self._read(1)[0]
        if self.protocol > 5:
            raise FormatError(f"unsupported pickle protocol {self.protocol} ({self.stream})")

    def op_FRAME(self) -> None:
        size = _U64.unpack(self._read(8))[0]
        if self._frame_end is not None and self._op_start < self._frame_end:
            self.anomalies.append(f"FRAME at byte {self._op_start} starts inside the previous frame")
        if self.pos + size > len(self.data):
            raise TruncatedPickle(f"pickle FRAME at byte {self._op_start} runs past the end ({self.stream})")
        self._frame_end = self.pos + size

    def op_STOP(self) -> object:
        return _STOP

    def op_MARK(self) -> None:
        if len(self._metastack) >= self.limits.max_depth:
            raise FormatError(f"pickle nesting exceeds {self.limits.max_depth} ({self.stream})")
        self._metastack.append(self._stack)
        self._stack = []

    def op_POP(self) -> None:
        if self._stack:
            self._stack.pop()
        else:
            self._pop_mark()

    def op_POP_MARK(self) -> None:
        self._pop_mark()

    def op_DUP(self) -> None:
        self._stack.append(self._top())

    # constants and numbers
    def op_NONE(self) -> None:
        self._stack.append(None)

    def op_NEWTRUE(self) -> None:
        self._stack.append(True)

    def op_NEWFALSE(self) -> None:
        self._stack.append(False)

    def op_INT(self) -> None:
        line = self._readline()
        if line == b"00":
            v: Any = False
        elif line == b"01":
            v = True
        else:
            v = self._parse_int(line)
        self._stack.append(v)

    def _parse_int(self, line: bytes) -> int:
        try:
            return int(line.rstrip(b"L"), 0 if line.startswith((b"0x", b"-0x")) else 10)
        except ValueError:
            raise FormatError(f"bad integer literal at byte {self._op_start} ({self.stream})") from None

    def op_LONG(self) -> None:
        self._stack.append(self._parse_int(self._readline()))

    def op_BININT(self) -> None:
        self._stack.append(_I32.unpack(self._read(4))[0])

    def op_BININT1(self) -> None:
        self._stack.append(self._read(1)[0])

    def op_BININT2(self) -> None:
        self._stack.append(_U16.unpack(self._read(2))[0])

    def op_LONG1(self) -> None:
        n = self._read(1)[0]
        self._stack.append(int.from_bytes(self._read(n), "little", signed=True))

    def op_LONG4(self) -> None:
        n = _I32.unpack(self._read(4))[0]
        if n < 0:
            raise FormatError(f"negative LONG4 length at byte {self._op_start} ({self.stream})")
        if n > 4096:
            raise FormatError(f"LONG4 of {n} bytes at byte {self._op_start} is beyond any checkpoint value")
        self._stack.append(int.from_bytes(self._read(n), "little", signed=True))

    def op_FLOAT(self) -> None:
        try:
            self._stack.append(float(self._readline()))
        except ValueError:
            raise FormatError(f"bad float literal at byte {self._op_start} ({self.stream})") from None

    def op_BINFLOAT(self) -> None:
        self._stack.append(_F64.unpack(self._read(8))[0])

    # strings and bytes
    def op_STRING(self) -> None:
        line = self._readline()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            raw = codecs.escape_decode(line[1:-1])[0]
            self._stack.append(raw.decode("latin-1"))
        else:
            raise FormatError(f"bad STRING literal at byte {self._op_start} ({self.stream})")

    def op_BINSTRING(self) -> None:
        n = _I32.unpack(self._read(4))[0]
        self._stack.append(self._read(n).decode("latin-1"))

    def op_SHORT_BINSTRING(self) -> None:
        raw = self._read(self._read(1)[0])
        try:
            self._stack.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self._wo("string", "SHORT_BINSTRING that is not UTF-8")
            self._stack.append(raw.decode("latin-1"))

    def op_BINBYTES(self) -> None:
        self._stack.append(self._read(_U32.unpack(self._read(4))[0]))

    def op_SHORT_BINBYTES(self) -> None:
        self._stack.append(self._read(self._read(1)[0]))

    def op_BINBYTES8(self) -> None:
        self._stack.append(self._read(_U64.unpack(self._read(8))[0]))

    def op_BYTEARRAY8(self) -> None:
        self._stack.append(bytearray(self._read(_U64.unpack(self._read(8))[0])))

    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise FormatError(f"bad UTF-8 string at byte {self._op_start} ({self.stream})") from None

    def op_UNICODE(self) -> None:
        self._stack.append(self._readline().decode("raw-unicode-escape"))

    def op_SHORT_BINUNICODE(self) -> None:
        self._stack.append(self._text(self._read(self._read(1)[0])))

    def op_BINUNICODE(self) -> None:
        self._stack.append(self._text(self._read(_U32.unpack(self._read(4))[0])))

    def op_BINUNICODE8(self) -> None:
        self._stack.append(self._text(self._read(_U64.unpack(self._read(8))[0])))

    def op_NEXT_BUFFER(self) -> None:
        raise FormatError(f"pickle needs out-of-band buffers (NEXT_BUFFER at byte {self._op_start})")

    def op_READONLY_BUFFER(self) -> None:
        self._top()

    # containers
    def op_EMPTY_TUPLE(self) -> None:
        self._stack.append(())

    def op_TUPLE(self) -> None:
        items = self._pop_mark()
        self._stack.append(tuple(items))

    def op_TUPLE1(self) -> None:
        self._stack.append((self._pop(),))

    def op_TUPLE2(self) -> None:
        b = self._pop()
        a = self._pop()
        self._stack.append((a, b))

    def op_TUPLE3(self) -> None:
        c = self._pop()
        b = self._pop()
        a = self._pop()
        self._stack.append((a, b, c))

    def op_EMPTY_LIST(self) -> None:
        self._stack.append([])

    def op_LIST(self) -> None:
        items = self._pop_mark()
        self._stack.append(items)

    def op_EMPTY_DICT(self) -> None:
        self._stack.append({})

    def op_DICT(self) -> None:
        items = self._pop_mark()
        d: dict[Any, Any] = {}
        self._setitems(d, items)
        self._stack.append(d)

    def op_EMPTY_SET(self) -> None:
        self._stack.append(set())

    def op_FROZENSET(self) -> None:
        items = self._hashable(self._pop_mark())
        self._stack.append(frozenset(items))

    def op_ADDITEMS(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, set):
            target.update(self._hashable(items))
        elif isinstance(target, Call):
            target.items.extend(items)
        else:
            raise FormatError(f"ADDITEMS on a non-set at byte {self._op_start} ({self.stream})")

    def _hashable(self, items: list[Any]) -> list[Any]:
        for it in items:
            try:
                hash(it)
            except TypeError:
                raise FormatError(f"unhashable set item at byte {self._op_start} ({self.stream})") from None
        return items

    def op_APPEND(self) -> None:
        v = self._pop()
        self._append(self._top(), [v])

    def op_APPENDS(self) -> None:
        items = self._pop_mark()
        self._append(self._top(), items)

    def _append(self, target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, Call):
            self._wo("append-class", target.qualname)
            target.items.extend(items)
        else:
            raise FormatError(f"APPEND to a {type(target).__name__} at byte {self._op_start} ({self.stream})")

    def op_SETITEM(self) -> None:
        v = self._pop()
        k = self._pop()
        self._setitems(self._top(), [k, v])

    def op_SETITEMS(self) -> None:
        items = self._pop_mark()
        self._setitems(self._top(), items)

    def _setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            raise FormatError(f"odd number of dict items at byte {self._op_start} ({self.stream})")
        if isinstance(target, dict):
            try:
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            except TypeError:
                raise FormatError(f"unhashable dict key at byte {self._op_start} ({self.stream})") from None
        elif isinstance(target, Call):
            self._wo("setitem", target.qualname)
            target.dictitems.extend(zip(items[::2], items[1::2]))
        else:
            raise FormatError(f"SETITEM on a {type(target).__name__} at byte {self._op_start} ({self.stream})")

    # memo
    def op_PUT(self) -> None:
        self._memo_put(self._parse_int(self._readline()), self._top())

    def op_BINPUT(self) -> None:
        self._memo_put(self._read(1)[0], self._top())

    def op_LONG_BINPUT(self) -> None:
        self._memo_put(_U32.unpack(self._read(4))[0], self._top())

    def op_MEMOIZE(self) -> None:
        self._memo_put(len(self._memo), self._top())

    def op_GET(self) -> None:
        self._stack.append(self._memo_get(self._parse_int(self._readline())))

    def op_BINGET(self) -> None:
        self._stack.append(self._memo_get(self._read(1)[0]))

    def op_LONG_BINGET(self) -> None:
        self._stack.append(self._memo_get(_U32.unpack(self._read(4))[0]))

    # globals and calls
    def _line_str(self) -> str:
        return self._readline().decode("utf-8", "replace")

    def op_GLOBAL(self) -> None:
        module = self._line_str()
        name = self._line_str()
        self._stack.append(self._global(module, name, "GLOBAL"))

    def op_STACK_GLOBAL(self) -> None:
        name = self._pop()
        module = self._pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise FormatError(f"STACK_GLOBAL with non-string operands at byte {self._op_start} ({self.stream})")
        self._stack.append(self._global(module, name, "STACK_GLOBAL"))

    def _ext(self, code: int, opcode: str) -> None:
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        module, name = key if key else ("copyreg", f"<extension {code}>")
        self._stack.append(self._global(module, name, opcode))

    def op_EXT1(self) -> None:
        self._ext(self._read(1)[0], "EXT1")

    def op_EXT2(self) -> None:
        self._ext(_U16.unpack(self._read(2))[0], "EXT2")

    def op_EXT4(self) -> None:
        self._ext(_I32.unpack(self._read(4))[0], "EXT4")

    def op_REDUCE(self) -> None:
        args = self._pop()
        func = self._pop()
        if not isinstance(func, Global):
            self._wo("reduce", type(func).__name__)
        elif func.qualname in NESTED_LOADERS and isinstance(args, tuple):
            self.nested.extend((self._op_start, a) for a in args if isinstance(a, (bytes, bytearray)))
        self._stack.append(interpret_call(func, args, "REDUCE"))

    def op_NEWOBJ(self) -> None:
        args = self._pop()
        cls = self._pop()
        if isinstance(cls, Global):
            self._wo("newobj-class", cls.qualname)
        else:
            self._wo("newobj", type(cls).__name__)
        self._stack.append(interpret_call(cls, args, "NEWOBJ"))

    def op_NEWOBJ_EX(self) -> None:
        kwargs = self._pop()
        args = self._pop()
        cls = self._pop()
        call = interpret_call(cls, args, "NEWOBJ_EX")
        if isinstance(call, Call):
            call.kwargs = kwargs
        self._stack.append(call)

    def op_INST(self) -> None:
        module = self._line_str()
        name = self._line_str()
        args = tuple(self._pop_mark())
        self._stack.append(Call(self._global(module, name, "INST"), args, "INST"))

    def op_OBJ(self) -> None:
        items = self._pop_mark()
        if not items:
            raise FormatError(f"OBJ without a class at byte {self._op_start} ({self.stream})")
        self._stack.append(Call(items[0], tuple(items[1:]), "OBJ"))

    def op_BUILD(self) -> None:
        state = self._pop()
        target = self._top()
        if isinstance(target, Call):
            self._wo("build-class", _built_type(target))
        elif not isinstance(target, (ODict, TensorStub)):
            self._wo("build", type(target).__name__)
        if isinstance(target, ODict):
            if isinstance(state, dict) and "_metadata" in state:
                target.metadata = state["_metadata"]
            elif isinstance(state, tuple) and state and isinstance(state[0], dict):
                target.metadata = state[0].get("_metadata")
        elif isinstance(target, Call):
            target.state = state
        elif isinstance(target, TensorStub):
            pass  # Parameter/legacy tensor state: no effect on the metadata we record
        else:
            raise FormatError(f"BUILD on a {type(target).__name__} at byte {self._op_start} ({self.stream})")

    def op_PERSID(self) -> None:
        self._persistent(self._readline().decode("ascii", "replace"))

    def op_BINPERSID(self) -> None:
        pid = self._pop()
        if not (type(pid) is int or (type(pid) is tuple and pid and pid[0] == "storage")):
            self._wo("persid", type(pid[0] if isinstance(pid, tuple) and pid else pid).__name__)
        self._persistent(pid)

    def _persistent(self, pid: Any) -> None:
        if self.persistent_load is None:
            raise FormatError(f"unexpected persistent id at byte {self._op_start} ({self.stream})")
        self._stack.append(self.persistent_load(pid))


_STOP = object()

# Callables that unpickle (or wrap for unpickling) a byte string they are given.
NESTED_LOADERS = frozenset({
    "pickle.loads", "_pickle.loads", "pickle._loads", "dill.loads", "dill._dill.loads",
    "cloudpickle.loads", "io.BytesIO", "_io.BytesIO", "torch.load", "torch.serialization.load",
    "joblib.load", "numpy.loads", "marshal.loads",
})

_NUMPY_DTYPE_CLASSES = {
    "b1": "BoolDType", "i1": "Int8DType", "u1": "UInt8DType", "i2": "Int16DType", "u2": "UInt16DType",
    "i4": "Int32DType", "u4": "UInt32DType", "i8": "Int64DType", "u8": "UInt64DType",
    "f2": "Float16DType", "f4": "Float32DType", "f8": "Float64DType", "f16": "LongDoubleDType",
    "c8": "Complex64DType", "c16": "Complex128DType", "c32": "CLongDoubleDType", "O8": "ObjectDType",
    "O4": "ObjectDType", "M8": "DateTime64DType", "m8": "TimeDelta64DType",
}


def _built_type(call: Call) -> str:
    """The type of the object a call builds, where it differs from the callable (numpy dtypes)."""
    if call.qualname == "numpy.dtype" and call.args and isinstance(call.args[0], str):
        code = call.args[0]
        cls = _NUMPY_DTYPE_CLASSES.get(code) or {"U": "StrDType", "S": "BytesDType", "V": "VoidDType"}.get(code[:1])
        if cls:
            return f"numpy.dtypes.{cls}"
    return call.qualname

_OPCODES = {
    "(": "MARK", ".": "STOP", "0": "POP", "1": "POP_MARK", "2": "DUP", "F": "FLOAT", "I": "INT",
    "J": "BININT", "K": "BININT1", "L": "LONG", "M": "BININT2", "N": "NONE", "P": "PERSID",
    "Q": "BINPERSID", "R": "REDUCE", "S": "STRING", "T": "BINSTRING", "U": "SHORT_BINSTRING",
    "V": "UNICODE", "X": "BINUNICODE", "a": "APPEND", "b": "BUILD", "c": "GLOBAL", "d": "DICT",
    "}": "EMPTY_DICT", "e": "APPENDS", "g": "GET", "h": "BINGET", "i": "INST", "j": "LONG_BINGET",
    "l": "LIST", "]": "EMPTY_LIST", "o": "OBJ", "p": "PUT", "q": "BINPUT", "r": "LONG_BINPUT",
    "s": "SETITEM", "t": "TUPLE", ")": "EMPTY_TUPLE", "u": "SETITEMS", "G": "BINFLOAT",
    "\x80": "PROTO", "\x81": "NEWOBJ", "\x82": "EXT1", "\x83": "EXT2", "\x84": "EXT4",
    "\x85": "TUPLE1", "\x86": "TUPLE2", "\x87": "TUPLE3", "\x88": "NEWTRUE", "\x89": "NEWFALSE",
    "\x8a": "LONG1", "\x8b": "LONG4", "B": "BINBYTES", "C": "SHORT_BINBYTES",
    "\x8c": "SHORT_BINUNICODE", "\x8d": "BINUNICODE8", "\x8e": "BINBYTES8", "\x8f": "EMPTY_SET",
    "\x90": "ADDITEMS", "\x91": "FROZENSET", "\x92": "NEWOBJ_EX", "\x93": "STACK_GLOBAL",
    "\x94": "MEMOIZE", "\x95": "FRAME", "\x96": "BYTEARRAY8", "\x97": "NEXT_BUFFER",
    "\x98": "READONLY_BUFFER",
}

_DISPATCH: list[Any] = [None] * 256
for _ch, _name in _OPCODES.items():
    _DISPATCH[ord(_ch)] = getattr(StaticUnpickler, "op_" + _name)

_WO_CODES = frozenset(ord(c) for c, n in _OPCODES.items() if n in WEIGHTS_ONLY_OPCODES)


def storage_from_pid(pid: Any, *, legacy: bool = False) -> Storage:
    """Decode torch's ``('storage', type, key, location, numel[, view])`` persistent id."""
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        raise FormatError("persistent id is not a torch storage")
    stype, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(stype, Global) or type(numel) is not int or numel < 0:
        raise FormatError("malformed storage persistent id")
    dtype = STORAGE_DTYPES.get(stype.name)
    if dtype is None:
        raise FormatError(f"unknown storage type {stype.qualname}")
    typed = stype.name != "UntypedStorage"
    nbytes = numel * ITEMSIZE.get(dtype, 1) if typed else numel
    st = Storage(str(key), dtype, nbytes, str(location), typed)
    if legacy and len(pid) > 5 and isinstance(pid[5], tuple) and len(pid[5]) == 3:
        view_key, offset, _size = pid[5]
        st.view_of = str(view_key)
        st.view_offset = offset if type(offset) is int else 0
    return st
