"""The legacy non-zip torch format and raw pickles, read the way ``torch.load`` reads them.

After the tar attempt fails (formats/tar.py), ``serialization._legacy_load``
unpickles from byte 0: the magic number, the protocol version, ``sys_info``,
the object, the storage keys — each with ``pickle.load``, so the magic number
and protocol are *values* (any pickle spelling of the same number counts:
BININT, LONG1, protocol-0 INT or LONG, a float for 1001) compared with ``!=``.
Each pickle runs before its value is checked, so a wrong value still means the
globals before it were reached. Then each storage named by the keys is read as
an 8-byte little-endian element count and its raw bytes; we step over those by
the declared sizes; tensor bytes are never read.
"""

from __future__ import annotations

from typing import Any

from ..errors import FormatError
from ..inventory import FormatFacts, Inventory, StorageRecord, StreamStop
from ..limits import DEFAULT_LIMITS, Budget, Limits
from ..record import field, record
from .common import Assembler, CountingFile, record_pid, storage_alias
from .dtypes import ITEMSIZE, STORAGE_DTYPES
from .knowncalls import global_kind
from .stubs import short_repr
from .tar import is_tar
from .unpickler import Call, Global, StaticUnpickler, TensorStub, storage_from_pid

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_STORAGE_NAMES = frozenset(n for n in STORAGE_DTYPES if n != "UntypedStorage")
"""``torch.storage._dtype_to_storage_type_map``'s names: what ``StorageType(name)`` accepts."""
PROTOCOL_VERSION = 1001

__all__ = ["MAGIC_NUMBER", "PROTOCOL_VERSION", "is_tar", "read_pickle_file"]


def budget_of(f: CountingFile, limits: Limits) -> Budget:
    """The file's one budget (CountingFile makes it): every reader of the file charges it."""
    return f.budget


def new_assembler(path: str, limits: Limits, f: CountingFile) -> Assembler:
    return Assembler(path, limits, budget=f.budget)


def stop(asm: Assembler, stream: str, offset: int, reason: str, limit: str | None = None) -> None:
    """Record where torch.load raises (or reading had to stop); what came before stays reported."""
    asm.stops.append(StreamStop(stream, offset, reason, limit))


def parse_stream(asm: Assembler, f: CountingFile, offset: int, stream: str,
                 persistent_load: Any, *, peek: bool = True) -> tuple[Any, int, bool]:
    """One ``pickle.load`` at ``offset``: (value, where the file is left, stopped).

    ``stopped`` means the unpickler raises there: torch.load raises too, after
    running everything before it (the globals are in ``asm`` either way). A file
    object without ``peek`` (torch's unbuffered ``open(p, "rb", 0)`` of an
    extracted tar member) has read a FRAME whole, so it is left at the frame's
    end even when STOP comes earlier; with ``peek`` it is left right after STOP."""
    before = len(asm.stops)
    value, end = asm.parse_file_stream(f, offset, stream, persistent_load=persistent_load, file_framing=not peek)
    stopped = any(s.stream == stream for s in asm.stops[before:])  # not another reading's stop
    if not stopped:
        fe = frame_end(f, offset, end)
        if fe > end:
            if peek:
                asm.anomalies.append(
                    f"{stream}: a FRAME runs {fe - end} bytes past STOP; the next pickle.load starts after STOP "
                    "or after the frame, depending on the reader's buffer (both are scanned)")
            else:
                end = fe
    return value, end, stopped


def frame_end(f: CountingFile, offset: int, end: int) -> int:
    """The end of the last FRAME the stream ``[offset, end)`` announced (``end`` when none reaches past it)."""
    data = f.pread(offset, end - offset)
    if b"\x95" not in data:
        return end
    import pickletools  # only a legacy file with FRAMEs gets here: the import costs a small check's start-up

    last = end
    try:
        for op, arg, pos in pickletools.genops(data):
            if op.name == "FRAME" and isinstance(arg, int) and pos is not None:
                last = max(last, offset + pos + 9 + arg)
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - the VM read this stream; pickletools being stricter changes nothing
        return end
    return last


def read_pickle_file(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """A file that is neither zip nor tar: the legacy torch format, or a raw pickle."""
    asm = new_assembler(path, limits, f)
    value, end, stopped = first_pickle(f, asm)
    refuses = zip_after_tar_probe(f)
    if refuses is not None:  # torch.load unpickles nothing; pickle.load still runs pickle#0
        asm.anomalies.append(f"torch.load refuses the file ({refuses}); pickle.load runs its first pickle")
        facts = FormatFacts(
            format="pickle" if _differs(value, MAGIC_NUMBER) is True else "torch-legacy", file_size=f.size,
            bytes_read=f.bytes_read, pickle_protocol=asm.protocol, streams=tuple(asm.streams), loaded_streams=(),
            opcodes=tuple(sorted(asm.opcodes)), extra={"torch_refuses": refuses},
        )
        return asm.inventory(facts, None if stopped else asm.collect(value, "pickle#0"))
    # a PROTO above 5 stops CPython at byte 0, not torch's weights_only unpickler: the magic number it reads
    # decides whether weights_only=True goes on as a legacy file (fuzz seed 41 index 190)
    on = _weights_only_on(asm, f, 0, "pickle#0", None) if stopped else None
    if _differs(value if on is None else on[0], MAGIC_NUMBER) is True:
        structure = asm.collect(value, "pickle#0")
        if end < f.size and not stopped:  # after a stop, ``end`` is where CPython raised, not a STOP
            asm.anomalies.append(f"{f.size - end} bytes follow the pickle's STOP")
            _scan_trailing_pickles(f, asm, end)
        facts = FormatFacts(
            format="pickle", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
            streams=tuple(asm.streams), loaded_streams=("pickle#0",), opcodes=tuple(sorted(asm.opcodes)),
        )
        return asm.inventory(facts, structure)
    read = read_legacy_streams(f, asm, first=(value, end, stopped))
    facts = FormatFacts(
        format="torch-legacy", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
        byteorder="little", streams=tuple(asm.streams), loaded_streams=tuple(read.loaded_streams),
        opcodes=tuple(sorted(asm.opcodes)), extra=read.extra,
    )
    return asm.inventory(facts, read.structure, read.storages)


def zip_after_tar_probe(f: CountingFile) -> str | None:
    """torch.load's refusal of a non-tar file whose bytes 512..516 are a zip local header.

    ``_legacy_load`` first tries ``tarfile.open``: it reads one 512-byte header block and raises
    TarError, leaving the file at byte 512 (at the end for a shorter file); ``_is_zipfile`` then
    reads 4 bytes there and torch raises "is a zip archive" before unpickling anything."""
    if f.size < 512 + 4 or f.pread(512, 4) != b"PK\x03\x04":
        return None
    return "RuntimeError: the file is a zip archive (did you mean to use torch.jit.load()?)"


def first_pickle(f: CountingFile, asm: Assembler) -> tuple[Any, int, bool]:
    """The pickle at byte 0 as torch.load reads it: (value, end, stopped).

    It is parsed as ``pickle#0`` the way ``pickle.load`` reads it (ASCII strings); where
    torch.load's reading (UTF-8 strings) differs, the Assembler records that one too
    (``asm.torch_reading``) and its value is what torch compares with the magic number."""
    before = len(asm.stops)
    value, end = asm.parse_file_stream(f, 0, "pickle#0", persistent_load=None)
    name = asm.torch_reading.get("pickle#0")
    if not name:
        return value, end, len(asm.stops) > before
    data = f.pread(0, min(f.size, asm.limits.max_pickle_bytes))
    up, torch_value, err = asm._run(data, name, 0, None, False, "utf-8")
    return torch_value, up.stop_offset if err is not None else up.end, err is not None


@record(frozen=False)
class LegacyRead:
    """What torch's legacy reader got from the file."""

    structure: Any = None
    storages: list[StorageRecord] | None = None
    loaded_streams: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    weights_only_streams: list[str] = field(default_factory=list)
    """Streams only torch's weights_only unpickler reads: it goes on past a PROTO above 5 (a warning)
    where CPython, and so torch.load(weights_only=False), stops. Named ``pickle#N#weights_only``."""


def read_legacy_streams(f: CountingFile, asm: Assembler,
                        first: tuple[Any, int, bool] | None = None) -> LegacyRead:
    """torch's legacy reader from byte 0, statically, stopping where torch raises.

    ``first`` is the byte-0 pickle when a caller has parsed it already (value, end, stopped).

    Where a FRAME runs past a stream's STOP, torch's next ``pickle.load`` starts
    after STOP or after the frame depending on its file buffer: the other start
    is scanned too and listed after torch's own sequence in ``loaded_streams``
    (torch may load it), so nothing hides there."""
    out = LegacyRead()
    alternates: list[tuple[int, int]] = []
    try:
        _legacy_walk(f, asm, out, alternates, first)
    finally:
        for index, start in alternates[:4]:
            out.loaded_streams.extend(_scan_alternate(f, asm, index, start))
    if out.weights_only_streams:
        out.extra["weights_only_streams"] = list(out.weights_only_streams)
    return out


def _legacy_walk(f: CountingFile, asm: Assembler, out: LegacyRead, alternates: list[tuple[int, int]],
                 first: tuple[Any, int, bool] | None) -> None:
    loaded = out.loaded_streams
    weights_only = False  # past a PROTO > 5: only torch's weights_only unpickler reads on

    def load(index: int, offset: int, persistent_load: Any = None) -> tuple[Any, int, bool]:
        nonlocal weights_only
        stream = f"pickle#{index}" + ("#weights_only" if weights_only else "")
        (out.weights_only_streams if weights_only else loaded).append(stream)
        if index == 0 and first is not None:
            value, end, stopped = first
        else:
            value, end, stopped = parse_stream(asm, f, offset, stream, persistent_load)
        if stopped:
            on = _weights_only_on(asm, f, offset, stream, persistent_load)
            if on is not None:
                weights_only = True
                return on
        elif index < 4 and not weights_only:
            fe = frame_end(f, offset, end)
            if fe > end:
                alternates.append((index + 1, fe))
        return value, end, stopped

    def last() -> str:
        return out.weights_only_streams[-1] if out.weights_only_streams else loaded[-1]

    magic, offset, stopped = load(0, 0)
    if stopped or not _check(asm, magic, MAGIC_NUMBER, last(), offset, "Invalid magic number; corrupt file?",
                             out.extra):
        return
    version, offset, stopped = load(1, offset)
    if stopped or not _check(asm, version, PROTOCOL_VERSION, last(), offset,
                             f"Invalid protocol version: {_short(version)}", out.extra):
        return
    sys_info, offset, stopped = load(2, offset)
    if stopped:
        return
    if not weights_only:
        out.extra["sys_info"] = _plain_sys_info(sys_info)
    asm.wrapper_streams.add("pickle#3" + ("#weights_only" if weights_only else ""))  # torch's UnpicklerWrapper
    obj, offset, stopped = load(3, offset, _legacy_loader(asm))
    if stopped:
        return
    if not weights_only:
        out.structure = asm.collect(obj, "pickle#3")
    keys, offset, stopped = load(4, offset)
    if not stopped:
        storages = _storage_records(f, asm, keys, offset, last())
        if not weights_only:
            out.storages = storages


def _weights_only_on(asm: Assembler, f: CountingFile, offset: int, stream: str,
                     persistent_load: Any) -> tuple[Any, int, bool] | None:
    """Where ``stream`` stopped at a PROTO above 5 but its ``#weights_only`` reading (Assembler) got to
    STOP: that reading's value and end, which torch's weights_only load compares and reads on from."""
    name = asm.weights_only_reading.get(stream)
    done = [p for p in asm.pickles if p.stream == name and p.end is not None]
    if name is None or not done or any(s.stream == name for s in asm.stops):
        return None
    end = done[-1].end or 0
    up = StaticUnpickler(f.pread(offset, end), f"{name}~value", persistent_load=persistent_load,
                         limits=asm.limits, budget=asm.budget)
    up.any_protocol = True
    try:
        value = up.load()
    except (FormatError, ValueError, OverflowError, RecursionError, MemoryError):
        return None
    finally:
        asm.budget.opcodes -= up.count  # read once already, as the recorded reading
        asm.budget.memo -= len(up._memo)
    return value, offset + end, False


def _scan_alternate(f: CountingFile, asm: Assembler, index: int, offset: int) -> list[str]:
    """The legacy streams from ``index`` on, read from a frame's end instead of its STOP."""
    names: list[str] = []
    while index <= 4 and offset < f.size:
        before = len(asm.stops)
        name = f"pickle#{index}@{offset}"
        if index == 3:  # the object, read through torch's UnpicklerWrapper and its persistent_load
            asm.wrapper_streams.add(name)
        loader = _legacy_loader(asm, register=False) if index == 3 else record_pid
        _, end = asm.parse_file_stream(f, offset, name, persistent_load=loader)
        names.append(name)
        if len(asm.stops) > before:
            asm.stops.pop()  # a stream torch may never load: its stop is not torch's
            break
        index, offset = index + 1, end
    return names


def _storage_records(f: CountingFile, asm: Assembler, keys: Any, offset: int,
                     stream: str = "pickle#4") -> list[StorageRecord]:
    """Each storage the key list names: an 8-byte little-endian count, then its bytes (``_set_from_file``)."""
    storages: list[StorageRecord] = []
    if isinstance(keys, (list, tuple, dict, str, set, frozenset)):
        key_list = list(keys)  # ``for key in keys``: a dict gives its keys, a str its characters
    else:
        stop(asm, stream, offset, f"torch iterates the storage key list, a {type(keys).__name__}")
        key_list = []
    done: set[str] = set()
    grown = _grown_nbytes(asm)
    for key in key_list:
        st = asm.storages.get(key) if isinstance(key, str) else None
        if st is None:
            stop(asm, stream, offset, f"torch.load raises: storage key {_short(key)} not found "
                 "in the objects the pickle built")
            break
        head = f.pread(offset, 8)
        start = offset + 8
        if len(head) < 8:
            stop(asm, stream, offset, f"torch.load raises: storage {key!r} runs past the end of the file")
            break
        # THPStorage_readFileRaw: int64 count times a uint64 element size, kept as an int64 (it wraps)
        on_disk = _int64(int.from_bytes(head, "little", signed=True) * ITEMSIZE.get(st.dtype, 1))
        held = max(st.nbytes, grown.get(key, 0)) if st.nbytes is not None else None
        if held is not None and on_disk != held:  # checked before any byte is read
            why = f"the pickle declares {st.nbytes}" + (
                f", a tensor's sizes and strides grew it to {held} (Tensor.set_)" if held != st.nbytes else "")
            stop(asm, stream, offset, f"torch.load raises: storage {key!r} has wrong byte size "
                 f"({on_disk} bytes on disk, {why})")
            break
        if on_disk < 0 or on_disk > f.size - start:
            stop(asm, stream, offset, f"torch.load raises: storage {key!r} runs past the end of the file")
            break
        storages.append(StorageRecord(key, st.dtype, st.nbytes, st.location, f"bytes {start}-{start + on_disk}"))
        done.add(key)
        offset = start + on_disk
    for key, st in asm.storages.items():
        if key not in done:
            storages.append(StorageRecord(key, st.dtype, st.nbytes, st.location, None))
    return storages


def _int64(n: int) -> int:
    """``n`` as a C int64 holds it (two's complement wrap-around)."""
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def _grown_nbytes(asm: Assembler) -> dict[str, int]:
    """Storage key -> the bytes ``Tensor.set_`` resizes it to while the main pickle rebuilds its tensors
    (``computeStorageNbytes``: offset plus the last element's index, times the item size; a storage
    only grows). torch reads the storage's bytes afterwards and checks them against that size."""
    out: dict[str, int] = {}
    for t in asm.out.tensors:
        if t.storage_key is None or t.stride is None or 0 in t.shape:
            continue
        last = sum(st * (n - 1) for n, st in zip(t.shape, t.stride, strict=False))
        need = (t.storage_offset + last + 1) * ITEMSIZE.get(t.dtype, 1)
        out[t.storage_key] = max(out.get(t.storage_key, 0), need)
    return out


def _differs(value: Any, expected: int) -> bool | None:
    """``value != expected`` as torch evaluates it; None when only running the file could tell.

    A global whose real object is known (a builtin class or function, a dtype, an allowlisted torch
    function: formats/knowncalls.py) is never an int, so it differs (fuzz seed 2 index 56280)."""
    if isinstance(value, Global):
        return True if global_kind(value) is not None else None
    if isinstance(value, (Call, TensorStub)):
        return None
    try:
        return bool(value != expected)
    except Exception:  # noqa: BLE001 - a stand-in that cannot compare: unknown
        return None


def _check(asm: Assembler, value: Any, expected: int, stream: str, offset: int, message: str,
           extra: dict[str, Any]) -> bool:
    """Whether torch goes on past this comparison; an undecidable one is assumed to pass (all is scanned).

    When the compared value is an object a call built, ``extra["magic_compared_with"]`` names the
    callables (a list): safety/ knows which are plain data classes (no ``__eq__``/``__ne__`` of their
    own, e.g. DCP's Metadata dataclass), whose comparison with an int is decided: unequal."""
    differs = _differs(value, expected)
    if differs is None:
        if isinstance(value, Call):
            extra.setdefault("magic_compared_with", []).append(value.qualname)
        asm.anomalies.append(f"{stream}: torch compares an object the file builds with {expected}; "
                             "whether it passes is known only by running it (the rest of the file is scanned)")
        return True
    if differs:
        stop(asm, stream, offset, f"torch.load raises: {message}")
        return False
    return True


def _short(v: Any) -> str:
    return short_repr(v, 60)  # bounded: a tuple of DUP'd tuples has a repr of 2**n items


def _scan_trailing_pickles(f: CountingFile, asm: Assembler, offset: int) -> None:
    """Bytes after STOP are not loaded by pickle.load, but report any pickle hiding there."""
    i = 1
    while offset < f.size and i < asm.limits.max_streams:
        head = f.pread(offset, 2)
        if head[:1] != b"\x80":
            return
        try:
            _, offset = asm.parse_file_stream(f, offset, f"pickle#{i}", persistent_load=record_pid)
        except FormatError:
            return
        i += 1


def _legacy_loader(asm: Assembler, register: bool = True) -> Any:
    """torch's legacy ``persistent_load``; ``register=False`` checks each id the same way without adding its
    storage to the file's (a reading torch may not take: a FRAME's other end)."""
    storage = asm.storage_loader(legacy=True) if register else (lambda pid: storage_from_pid(pid, legacy=True))

    def load(pid: Any) -> Any:
        """``_legacy_load.persistent_load``: a tuple whose first item names its kind."""
        if not isinstance(pid, tuple) or not pid:
            raise FormatError("torch's legacy persistent_load needs a non-empty tuple")
        typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":
            # ('module', cls, source_file, source): a pickled nn.Module class; torch checks its source
            # with _check_container_source(*pid[1:]) when the rest is truthy (three arguments, exactly).
            if len(pid) < 2 or (all_truthy(pid[2:]) and len(pid) != 4):
                raise FormatError(f"module persistent id of {len(pid)} items: torch's source check raises TypeError")
            return pid[1]
        if typename != "storage":
            raise FormatError(f"Unknown saved id type: {_short(pid[0])} (torch raises RuntimeError)")
        if len(pid) != 6:
            raise FormatError(f"storage persistent id of {len(pid)} items: torch unpacks 6 (ValueError)")
        pid = storage_alias(pid)
        stype = pid[1]
        # UnpicklerWrapper hands back a StorageType for the legacy typed storage names only; any other
        # class (UntypedStorage included) has no ``dtype`` and torch raises AttributeError
        if isinstance(stype, Global) and stype.name not in LEGACY_STORAGE_NAMES:
            raise FormatError(f"{stype.qualname} has no dtype (torch raises AttributeError)")
        return storage(pid)
    return load


def all_truthy(items: Any) -> bool:
    """``all(items)`` over stand-ins: a global or a call's result is an object, and objects are true."""
    for x in items:
        if isinstance(x, (Global, Call, TensorStub)):
            continue
        try:
            if not x:
                return False
        except Exception:  # noqa: BLE001 - a stand-in without truth: like an object, true
            continue
    return True


def _plain_sys_info(sys_info: Any) -> dict[str, Any] | None:
    """The legacy header's sys_info, kept only as plain JSON data (a hostile file controls it)."""
    if not isinstance(sys_info, dict):
        return None
    out: dict[str, Any] = {}
    for k, v in list(sys_info.items())[:16]:
        if not isinstance(k, str):
            continue
        if isinstance(v, (bool, int, str)) and (not isinstance(v, int) or abs(v) < 1 << 53):
            out[k] = v if not isinstance(v, str) else v[:200]
        elif isinstance(v, dict):
            out[k] = {str(a): b for a, b in list(v.items())[:16]
                      if isinstance(a, str) and type(b) is int and abs(b) < 1 << 53}
    return out
