"""A minimal pure-Python metadata walker for torch.save zip checkpoints: the benchmarks' baseline.

What the least a static checker must do, done plainly and reasonably fast, so ckptlint's cost can be
judged against it (benchmarks/bench_reader.py):

- read the zip's end records and central directory (zip64 too: torch writes it past 65,535 entries)
  into a name -> (offset, size, method) table, without Python's zipfile;
- find ``<prefix>/data.pkl``, read its bytes (stored or deflated);
- walk the pickle opcodes in one loop over the bytes (an ``if`` chain, most frequent first, the memo
  a dict, no per-opcode objects beyond the values themselves), calling nothing: globals become
  :class:`Global` markers, ``BINPERSID`` storage ids become :class:`Storage`, torch's rebuild calls
  become :class:`Tensor`, ``collections.OrderedDict()`` an empty dict, any other call an :class:`Obj`;
- collect every tensor (key path, dtype, shape, stride, offset, storage key) and every global.

It is not a checker: no safety verdict, no bounds beyond Python's own, no legacy or tar formats, no
checks that the zip and the pickle agree. It imports nothing from ckptlint and never unpickles.

Usage: ``python benchmarks/walker.py FILE [--json]`` prints a one-line summary (or, with ``--json``,
every tensor and global as JSON).
"""

from __future__ import annotations

import struct
import sys
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing's names only for the type checker: the baseline pays no import it does not need
    from typing import Any

STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "LongStorage": "int64",
    "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "BFloat16Storage": "bfloat16", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "QInt8Storage": "qint8", "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}
REBUILD_TENSOR = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"})


class WalkError(Exception):
    """The file is not a torch zip checkpoint this walker understands."""


# -- zip ---------------------------------------------------------------------


def read_directory(f: Any, size: int) -> dict[str, tuple[int, int, int]]:
    """``name -> (local header offset, compressed size, method)`` from the central directory."""
    tail_len = min(size, 65_557)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    eocd = tail.rfind(b"PK\x05\x06")
    if eocd < 0:
        raise WalkError("no end of central directory record: not a zip file")
    count, cd_size, cd_offset = struct.unpack_from("<HII", tail, eocd + 10)
    if count == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        loc = eocd - 20
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            raise WalkError("zip64 locator missing")
        (z64_offset,) = struct.unpack_from("<Q", tail, loc + 8)
        f.seek(z64_offset)
        rec = f.read(56)
        if rec[:4] != b"PK\x06\x06":
            raise WalkError("zip64 end record missing")
        count, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
    f.seek(cd_offset)
    cd = f.read(cd_size)
    entries: dict[str, tuple[int, int, int]] = {}
    pos = 0
    unpack = struct.unpack_from
    for _ in range(count):
        if cd[pos:pos + 4] != b"PK\x01\x02":
            raise WalkError(f"bad central directory entry at {cd_offset + pos}")
        method, = unpack("<H", cd, pos + 10)
        csize, usize, n_name, n_extra, n_comment = unpack("<IIHHH", cd, pos + 20)
        offset, = unpack("<I", cd, pos + 42)
        name = cd[pos + 46:pos + 46 + n_name].decode("utf-8", "replace")
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            csize, offset = _zip64_extra(cd, pos + 46 + n_name, n_extra, usize, csize, offset)
        entries[name] = (offset, csize, method)
        pos += 46 + n_name + n_extra + n_comment
    return entries


def _zip64_extra(cd: bytes, start: int, n_extra: int, usize: int, csize: int, offset: int) -> tuple[int, int]:
    end = start + n_extra
    while start + 4 <= end:
        tag, n = struct.unpack_from("<HH", cd, start)
        if tag == 1:
            vals = list(struct.unpack_from(f"<{n // 8}Q", cd, start + 4))
            if usize == 0xFFFFFFFF:
                vals.pop(0)
            if csize == 0xFFFFFFFF:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF:
                offset = vals.pop(0)
            break
        start += 4 + n
    return csize, offset


def read_member(f: Any, entry: tuple[int, int, int]) -> bytes:
    offset, csize, method = entry
    f.seek(offset)
    header = f.read(30)
    if header[:4] != b"PK\x03\x04":
        raise WalkError("bad local header")
    n_name, n_extra = struct.unpack_from("<HH", header, 26)
    f.seek(offset + 30 + n_name + n_extra)
    raw = f.read(csize)
    if method == 0:
        return bytes(raw)
    if method == 8:
        return zlib.decompress(raw, -15)
    raise WalkError(f"compression method {method}")


# -- values the walk builds --------------------------------------------------


class Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class Storage:
    __slots__ = ("dtype", "key", "location", "numel")

    def __init__(self, pid: Any) -> None:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise WalkError(f"unexpected persistent id {pid!r:.80}")
        kind = pid[1]
        name = kind.name if isinstance(kind, Global) else str(kind)
        self.dtype = STORAGE_DTYPES.get(name, name.lower())
        self.key, self.location, self.numel = str(pid[2]), pid[3], pid[4]


class Tensor:
    __slots__ = ("dtype", "offset", "parameter", "shape", "storage", "stride")

    def __init__(self, args: tuple[Any, ...]) -> None:
        storage, offset, shape, stride = args[0], args[1], args[2], args[3]
        if not isinstance(storage, Storage):
            raise WalkError("a tensor without a storage")
        self.storage, self.offset = storage, offset
        self.shape, self.stride = tuple(shape), tuple(stride)
        self.dtype = storage.dtype
        self.parameter = False


class Obj:
    """Any other call's result or instance: its class and, after BUILD, its state."""

    __slots__ = ("cls", "state")

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.state: Any = None


class _Mark:
    pass


MARK = _Mark()


def _call(fn: Any, args: Any) -> Any:
    if isinstance(fn, Global):
        if fn.module == "torch._utils":
            if fn.name in REBUILD_TENSOR:
                return Tensor(args)
            if fn.name == "_rebuild_parameter" or fn.name == "_rebuild_parameter_with_state":
                t = args[0]
                if isinstance(t, Tensor):
                    t.parameter = True
                return t
        if fn.module == "collections" and fn.name == "OrderedDict" and not args:
            return {}
    return Obj(fn)


# -- the pickle walk ---------------------------------------------------------


def walk_pickle(data: bytes, globals_seen: dict[tuple[str, str], int]) -> Any:
    """The value the pickle builds, with markers instead of calls; globals by (module, name) -> first offset."""
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    append = stack.append
    pos = 0
    n = len(data)
    unpack = struct.unpack_from
    while pos < n:
        op = data[pos]
        pos += 1
        if op == 0x71:  # BINPUT
            memo[data[pos]] = stack[-1]
            pos += 1
        elif op == 0x68:  # BINGET
            append(memo[data[pos]])
            pos += 1
        elif op == 0x58:  # BINUNICODE
            (ln,) = unpack("<I", data, pos)
            pos += 4
            append(data[pos:pos + ln].decode("utf-8", "surrogatepass"))
            pos += ln
        elif op == 0x4B:  # BININT1
            append(data[pos])
            pos += 1
        elif op == 0x28:  # MARK
            metastack.append(stack)
            stack = []
            append = stack.append
        elif op == 0x74:  # TUPLE
            tup = tuple(stack)
            stack = metastack.pop()
            append = stack.append
            append(tup)
        elif op == 0x85:  # TUPLE1
            stack[-1] = (stack[-1],)
        elif op == 0x86:  # TUPLE2
            stack[-2:] = [(stack[-2], stack[-1])]
        elif op == 0x87:  # TUPLE3
            stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
        elif op == 0x52:  # REDUCE
            args = stack.pop()
            stack[-1] = _call(stack[-1], args)
        elif op == 0x51:  # BINPERSID
            stack[-1] = Storage(stack[-1])
        elif op == 0x72:  # LONG_BINPUT
            (i,) = unpack("<I", data, pos)
            memo[i] = stack[-1]
            pos += 4
        elif op == 0x6A:  # LONG_BINGET
            (i,) = unpack("<I", data, pos)
            append(memo[i])
            pos += 4
        elif op == 0x4D:  # BININT2
            (i,) = unpack("<H", data, pos)
            append(i)
            pos += 2
        elif op == 0x4A:  # BININT
            (i,) = unpack("<i", data, pos)
            append(i)
            pos += 4
        elif op == 0x89:  # NEWFALSE
            append(False)
        elif op == 0x88:  # NEWTRUE
            append(True)
        elif op == 0x29:  # EMPTY_TUPLE
            append(())
        elif op == 0x7D:  # EMPTY_DICT
            append({})
        elif op == 0x5D:  # EMPTY_LIST
            append([])
        elif op == 0x75:  # SETITEMS
            items = stack
            stack = metastack.pop()
            append = stack.append
            d = stack[-1]
            if isinstance(d, dict):
                for i in range(0, len(items) - 1, 2):
                    d[_hashable(items[i])] = items[i + 1]
        elif op == 0x73:  # SETITEM
            v = stack.pop()
            k = stack.pop()
            d = stack[-1]
            if isinstance(d, dict):
                d[_hashable(k)] = v
        elif op == 0x65:  # APPENDS
            items = stack
            stack = metastack.pop()
            append = stack.append
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif op == 0x61:  # APPEND
            v = stack.pop()
            if isinstance(stack[-1], list):
                stack[-1].append(v)
        elif op == 0x63:  # GLOBAL
            end = data.index(b"\n", pos)
            module = data[pos:end].decode("utf-8", "replace")
            end2 = data.index(b"\n", end + 1)
            name = data[end + 1:end2].decode("utf-8", "replace")
            globals_seen.setdefault((module, name), pos - 1)
            append(Global(module, name))
            pos = end2 + 1
        elif op == 0x93:  # STACK_GLOBAL
            name = stack.pop()
            module = stack[-1]
            globals_seen.setdefault((str(module), str(name)), pos - 1)
            stack[-1] = Global(str(module), str(name))
        elif op == 0x94:  # MEMOIZE
            memo[len(memo)] = stack[-1]
        elif op == 0x8C:  # SHORT_BINUNICODE
            ln = data[pos]
            append(data[pos + 1:pos + 1 + ln].decode("utf-8", "surrogatepass"))
            pos += 1 + ln
        elif op == 0x62:  # BUILD
            state = stack.pop()
            obj = stack[-1]
            if isinstance(obj, Obj):
                obj.state = state
        elif op == 0x81:  # NEWOBJ
            stack.pop()
            stack[-1] = Obj(stack[-1])
        elif op == 0x92:  # NEWOBJ_EX
            del stack[-2:]
            stack[-1] = Obj(stack[-1])
        elif op == 0x80:  # PROTO
            pos += 1
        elif op == 0x95:  # FRAME
            pos += 8
        elif op == 0x4E:  # NONE
            append(None)
        elif op == 0x47:  # BINFLOAT
            append(struct.unpack_from(">d", data, pos)[0])
            pos += 8
        elif op == 0x8A:  # LONG1
            ln = data[pos]
            append(int.from_bytes(data[pos + 1:pos + 1 + ln], "little", signed=True))
            pos += 1 + ln
        elif op == 0x8D:  # BINUNICODE8
            (ln,) = unpack("<Q", data, pos)
            append(data[pos + 8:pos + 8 + ln].decode("utf-8", "surrogatepass"))
            pos += 8 + ln
        elif op in (0x43, 0x42, 0x8E, 0x55, 0x54):  # SHORT_BINBYTES, BINBYTES, BINBYTES8, (SHORT_)BINSTRING
            width = {0x43: 1, 0x55: 1, 0x42: 4, 0x54: 4, 0x8E: 8}[op]
            ln = int.from_bytes(data[pos:pos + width], "little")
            append(data[pos + width:pos + width + ln])
            pos += width + ln
        elif op == 0x30:  # POP
            if stack:
                stack.pop()
            else:
                stack = metastack.pop()
                append = stack.append
        elif op == 0x31:  # POP_MARK
            stack = metastack.pop()
            append = stack.append
        elif op == 0x32:  # DUP
            append(stack[-1])
        elif op == 0x64:  # DICT
            items = stack
            stack = metastack.pop()
            append = stack.append
            append({_hashable(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)})
        elif op == 0x6C:  # LIST
            items = stack
            stack = metastack.pop()
            append = stack.append
            append(list(items))
        elif op == 0x8F:  # EMPTY_SET
            append([])
        elif op == 0x90:  # ADDITEMS
            items = stack
            stack = metastack.pop()
            append = stack.append
        elif op == 0x91:  # FROZENSET
            items = stack
            stack = metastack.pop()
            append = stack.append
            append(frozenset(_hashable(x) for x in items))
        elif op == 0x2E:  # STOP
            return stack[-1]
        else:
            raise WalkError(f"opcode {op:#x} at {pos - 1} not handled")
    raise WalkError("pickle ended without STOP")


def _hashable(k: Any) -> Any:
    try:
        hash(k)
    except TypeError:
        return id(k)
    return k


# -- the file ----------------------------------------------------------------


def collect(value: Any, path: tuple[Any, ...], out: list[tuple[tuple[Any, ...], Tensor]], seen: set[int]) -> None:
    """Tensors in the built value, with their key paths (dict keys, list indexes, object state)."""
    if isinstance(value, Tensor):
        out.append((path, value))
    elif isinstance(value, dict):
        if id(value) in seen:
            return
        seen.add(id(value))
        for k, v in value.items():
            if isinstance(v, (Tensor, dict, list, tuple, Obj)):
                collect(v, (*path, k), out, seen)
    elif isinstance(value, (list, tuple)):
        if id(value) in seen:
            return
        seen.add(id(value))
        for i, v in enumerate(value):
            if isinstance(v, (Tensor, dict, list, tuple, Obj)):
                collect(v, (*path, i), out, seen)
    elif isinstance(value, Obj) and value.state is not None:
        collect(value.state, path, out, seen)


def walk(path: str) -> dict[str, Any]:
    """Tensors and globals of a torch zip checkpoint, read from its metadata only."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        entries = read_directory(f, size)
        pkl = next((name for name in entries if name.endswith("/data.pkl") and name.count("/") == 1), None)
        if pkl is None:
            raise WalkError("no <prefix>/data.pkl record: not a torch zip checkpoint")
        data = read_member(f, entries[pkl])
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    globals_seen: dict[tuple[str, str], int] = {}
    root = walk_pickle(data, globals_seen)
    found: list[tuple[tuple[Any, ...], Tensor]] = []
    collect(root, (), found, set())
    prefix = pkl[: -len("data.pkl")]
    tensors = [{"path": list(p), "dtype": t.dtype, "shape": list(t.shape), "stride": list(t.stride),
                "storage_offset": t.offset, "storage_key": t.storage.key, "device": t.storage.location,
                "is_parameter": t.parameter, "in_zip": f"{prefix}data/{t.storage.key}" in entries}
               for p, t in found]
    return {"path": path, "zip_entries": len(entries), "pickle_bytes": len(data), "tensors": tensors,
            "globals": [{"module": m, "name": n, "offset": o} for (m, n), o in globals_seen.items()]}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[-1].strip() if __doc__ else "walker.py FILE [--json]")
        return 0 if argv else 2
    try:
        result = walk(argv[0])
    except (OSError, WalkError, ValueError, KeyError, IndexError, struct.error, zlib.error) as e:
        print(f"walker: {argv[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if "--json" in argv[1:]:
        import json

        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        missing = sum(1 for t in result["tensors"] if not t["in_zip"])
        print(f"{argv[0]}: {len(result['tensors'])} tensors, {len(result['globals'])} globals, "
              f"{result['zip_entries']} zip entries, {missing} storages missing")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
