"""Torch-free torch checkpoints with real tensor bytes, for the convert tests (nothing here imports torch).

:func:`pickle_of` writes the protocol-2 pickle ``torch.save`` writes for a tree of dicts, lists, plain values,
:class:`T` tensors (``_rebuild_tensor_v2`` + a ``storage`` persistent id), :class:`P` parameters and
:class:`Obj` instances (a class named, never imported); :func:`torch_zip` puts it in a zip with the storages'
bytes, as torch's writer lays it out. The values a tensor holds are ``array`` items in C order.
"""

from __future__ import annotations

import struct
import sys
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STORAGE = {"float32": ("FloatStorage", "f"), "float64": ("DoubleStorage", "d"), "int64": ("LongStorage", "q"),
           "int32": ("IntStorage", "i"), "int16": ("ShortStorage", "h"), "int8": ("CharStorage", "b"),
           "uint8": ("ByteStorage", "B"), "bool": ("BoolStorage", "B"), "float16": ("HalfStorage", "H"),
           "bfloat16": ("BFloat16Storage", "H"), "complex64": ("ComplexFloatStorage", "f"),
           "complex128": ("ComplexDoubleStorage", "d"), "qint8": ("QInt8Storage", "b")}
"""dtype -> (torch storage type, array typecode of its element bytes; half types as raw 16-bit words)."""


@dataclass(frozen=True)
class Storage:
    key: str
    dtype: str
    values: tuple[Any, ...]
    """Element values (complex: real and imaginary parts interleaved)."""

    def data(self, big_endian: bool = False) -> bytes:
        a = array(STORAGE[self.dtype][1], self.values)
        if big_endian != (sys.byteorder == "big"):
            a.byteswap()
        return a.tobytes()

    @property
    def numel(self) -> int:
        return len(self.values) // (2 if self.dtype.startswith("complex") else 1)


@dataclass(frozen=True)
class T:
    """A tensor: a view ``(shape, stride, offset)`` of ``storage``."""

    storage: Storage
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None = None
    offset: int = 0

    def strides(self) -> tuple[int, ...]:
        if self.stride is not None:
            return self.stride
        out, acc = [], 1
        for n in reversed(self.shape):
            out.append(acc)
            acc *= n
        return tuple(reversed(out))


@dataclass(frozen=True)
class P:
    """An ``nn.Parameter`` holding ``tensor``."""

    tensor: T
    requires_grad: bool = True


@dataclass(frozen=True)
class Obj:
    """An instance of ``module.name`` (NEWOBJ with no arguments, then BUILD with ``state``)."""

    module: str
    name: str
    state: Any = field(default_factory=dict)
    memo: int | None = None
    """Memoise the instance as this index (BINPUT right after NEWOBJ), so :class:`Get` can name it."""


@dataclass(frozen=True)
class Raw:
    """Pickle opcodes written as they are (a REDUCE of ``os.system`` …: named, never run by the reader)."""

    opcodes: bytes


@dataclass(frozen=True)
class Reduce:
    """``module.name(*args)`` as GLOBAL + arguments + REDUCE."""

    module: str
    name: str
    args: tuple[Any, ...]


def call(module: str, name: str, *args: Any) -> Reduce:
    return Reduce(module, name, args)


@dataclass(frozen=True)
class Get:
    """The object memoised as ``index`` (BINGET): the same object again, as pickle writes a second reference."""

    index: int


@dataclass(frozen=True)
class Put:
    """``obj``, memoised as ``index`` once built (BINPUT), for a later :class:`Get`."""

    obj: Any
    index: int


class OD(dict):  # type: ignore[type-arg]
    """A ``collections.OrderedDict`` (pickled as OrderedDict() then SETITEMS, as torch's state_dicts are)."""


def tensor(key: str, values: list[Any], shape: tuple[int, ...] | None = None, dtype: str = "float32") -> T:
    return T(Storage(key, dtype, tuple(values)), shape if shape is not None else (len(values),))


def su(text: str) -> bytes:
    b = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _emit(obj: Any) -> bytes:
    if obj is None:
        return b"N"
    if isinstance(obj, Raw):
        return obj.opcodes
    if isinstance(obj, Reduce):
        return _global(obj.module, obj.name) + _tuple([_emit(a) for a in obj.args]) + b"R"
    if isinstance(obj, Get):
        return b"h" + bytes([obj.index])
    if isinstance(obj, Put):
        return _emit(obj.obj) + b"q" + bytes([obj.index])
    if obj is True or obj is False:
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _int(obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, str):
        return su(obj)
    if isinstance(obj, tuple):
        return _tuple([_emit(x) for x in obj])
    if isinstance(obj, list):
        return b"]" + (b"(" + b"".join(_emit(x) for x in obj) + b"e" if obj else b"")
    if isinstance(obj, OD):
        body = b"".join(_emit(k) + _emit(v) for k, v in obj.items())
        return _global("collections", "OrderedDict") + b")R" + (b"(" + body + b"u" if obj else b"")
    if isinstance(obj, (set, frozenset)):
        return _global("builtins", "set") + b"(" + _emit(sorted(obj)) + b"tR"
    if isinstance(obj, dict):
        body = b"".join(_emit(k) + _emit(v) for k, v in obj.items())
        return b"}" + (b"(" + body + b"u" if obj else b"")
    if isinstance(obj, T):
        st = obj.storage
        pid = _tuple([su("storage"), _global("torch", STORAGE[st.dtype][0]), su(st.key), su("cpu"), _int(st.numel)])
        args = [pid + b"Q", _int(obj.offset), _tuple([_int(n) for n in obj.shape]),
                _tuple([_int(s) for s in obj.strides()]), b"\x89", _global("collections", "OrderedDict") + b")R"]
        return _global("torch._utils", "_rebuild_tensor_v2") + _tuple(args) + b"R"
    if isinstance(obj, P):
        args = [_emit(obj.tensor), _emit(obj.requires_grad), _global("collections", "OrderedDict") + b")R"]
        return _global("torch._utils", "_rebuild_parameter") + _tuple(args) + b"R"
    if isinstance(obj, Obj):
        put = b"" if obj.memo is None else b"q" + bytes([obj.memo])
        return _global(obj.module, obj.name) + b")\x81" + put + _emit(obj.state) + b"b"
    raise TypeError(f"cannot emit {type(obj).__name__}")


def pickle_of(obj: Any) -> bytes:
    return b"\x80\x02" + _emit(obj) + b"."


def storages_in(obj: Any) -> dict[str, Storage]:
    found: dict[str, Storage] = {}
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, T):
            found.setdefault(cur.storage.key, cur.storage)
        elif isinstance(cur, P):
            stack.append(cur.tensor)
        elif isinstance(cur, Obj):
            stack.append(cur.state)
        elif isinstance(cur, Put):
            stack.append(cur.obj)
        elif isinstance(cur, Reduce):
            stack.extend(cur.args)
        elif isinstance(cur, dict):
            stack.extend(cur.values())
        elif isinstance(cur, (list, tuple)):
            stack.extend(cur)
    return found


def torch_zip(path: Path, obj: Any, *, big_endian: bool = False, prefix: str = "archive",
              extra: dict[str, bytes] | None = None) -> Path:
    """``torch.save(obj, path)``'s layout: data.pkl, one data/<key> record per storage, byteorder, version."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pickle_of(obj))
        z.writestr(f"{prefix}/byteorder", "big" if big_endian else "little")
        for key, st in storages_in(obj).items():
            z.writestr(f"{prefix}/data/{key}", st.data(big_endian))
        for name, data in (extra or {}).items():
            z.writestr(f"{prefix}/{name}", data)
        z.writestr(f"{prefix}/version", "3\n")
    return path


def expected_bytes(t: T, big_endian: bool = False) -> bytes:
    """What ``t.contiguous()`` holds, little-endian: its elements gathered through its strides in C order."""
    st = t.storage
    unit = 2 if st.dtype.startswith("complex") else 1
    src = array(STORAGE[st.dtype][1], st.values)
    out = array(src.typecode)
    stride = t.strides()

    def walk(dim: int, off: int) -> None:
        if dim == len(t.shape):
            out.extend(src[off * unit:(off + 1) * unit])
            return
        for i in range(t.shape[dim]):
            walk(dim + 1, off + i * stride[dim])

    if all(n > 0 for n in t.shape):
        walk(0, t.offset)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def read_safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    """(header, data) of a safetensors file, parsed by hand (the unit tier has no safetensors package)."""
    import json

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def tensor_bytes(path: Path, name: str) -> bytes:
    header, data = read_safetensors(path)
    lo, hi = header[name]["data_offsets"]
    return data[lo:hi]


LINEAR = ("torch.nn.modules.linear", "Linear")


def module(cls: tuple[str, str], params: dict[str, Any], buffers: dict[str, Any] | None = None,
           children: dict[str, Any] | None = None, memo: int | None = None) -> Obj:
    """A pickled ``nn.Module`` the way torch pickles one: its ``__dict__`` with the parameter/buffer/child dicts."""
    state = {"training": True, "_parameters": OD(params), "_buffers": OD(buffers or {}),
             "_non_persistent_buffers_set": set(), "_modules": OD(children or {})}
    return Obj(*cls, state, memo)
