"""Shared plumbing for the format readers: counted reads and inventory assembly."""

from __future__ import annotations

import functools
import os
from typing import Any, BinaryIO

from ..errors import FormatError, LimitExceeded, TruncatedPickle
from ..inventory import (
    FormatFacts,
    GlobalRef,
    Inventory,
    KeyPath,
    Operation,
    PickleStream,
    StorageRecord,
    StreamStop,
)
from ..limits import DEFAULT_LIMITS, Budget, Limits
from ..record import replace
from .collect import Collected, collect
from .dtypes import TORCH_STORAGE_TYPES
from .stubs import Global, short_repr
from .unpickler import PersistentLoad, StaticUnpickler, Storage, storage_from_pid


@functools.cache
def _proto_of() -> dict[str, int]:
    """The protocol that introduced each opcode, as pickletools says (needed only for a stream with no PROTO:
    importing pickletools costs more than a small check's whole reading)."""
    import pickletools

    return {op.name: op.proto for op in pickletools.opcodes}


class CountingFile:
    """A read-only file that counts the bytes it hands out ("bytes actually read")."""

    def __init__(self, path: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.f: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self.f.fileno()).st_size
        self.bytes_read = 0
        self.budget = Budget(limits)
        """The file's one budget: every reader of this file charges it."""
        self.cache: dict[str, Any] = {}
        """What several readers of this file would otherwise parse again (the zip directory)."""

    def pread(self, offset: int, n: int) -> bytes:
        self.f.seek(offset)
        data = self.f.read(max(0, min(n, self.size - offset)))
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bytes_read += len(data)
        return data

    def tell(self) -> int:
        return self.f.tell()

    def close(self) -> None:
        self.f.close()
        self.cache.clear()  # an archive's reader refers back to this file: the cycle ends here


def record_pid(pid: Any) -> Any:
    """Persistent ids in streams torch never loads (or nested ones) are recorded, never resolved."""
    return {"__persistent_id__": short_repr(pid, 200)}


class Assembler:
    """Collects what the pickle streams of one file yield into an Inventory.

    Pass the file's ``budget`` (``CountingFile.budget``) so every stream is charged to
    the one per-file budget; the Assembler registers itself there, so that when a reader
    gives up, the front end can still report what was seen before the stop."""

    def __init__(self, path: str, limits: Limits = DEFAULT_LIMITS, budget: Budget | None = None) -> None:
        self.path = path
        self.limits = limits
        self.budget = budget if budget is not None else Budget(limits)
        self.budget.readers.append(self)
        self.out = Collected()
        self.globals: list[GlobalRef] = []
        self.opcodes: set[str] = set()
        self.streams: list[str] = []
        self.protocol: int | None = None
        self.notes: list[str] = []
        self.storages: dict[str, Storage] = {}
        self.pickles: list[PickleStream] = []
        self.operations: list[Operation] = []
        self.stops: list[StreamStop] = []
        self.anomalies: list[str] = []
        """Kept empty for the JSON contract; the neutral facts below replaced it."""
        self.weights_only_reading: dict[str, str] = {}
        """stream -> ``<stream>#weights_only``, read on past a PROTO CPython refuses (torch's
        weights_only unpickler only warns); not a stream pickle.load or torch.load(weights_only=False) reads."""
        self.torch_reading: dict[str, str] = {}
        """stream -> the stream holding torch.load's own reading of it, where that differs."""
        self.wrapper_streams: set[str] = set()
        """Streams torch.load reads through its UnpicklerWrapper (storage-type names resolved by torch)."""

    @property
    def stopped(self) -> StreamStop | None:
        """The first stop in this file's streams, if reading stopped anywhere."""
        return self.stops[0] if self.stops else None

    def _run(self, data: bytes, stream: str, start: int, persistent_load: PersistentLoad | None,
             file_framing: bool = False, encoding: str = "utf-8") -> tuple[StaticUnpickler, Any, Exception | None]:
        up = StaticUnpickler(data, stream, start=start, persistent_load=persistent_load, limits=self.limits,
                             budget=self.budget, file_framing=file_framing, encoding=encoding)
        try:
            return up, up.load(), None
        except (FormatError, ValueError, OverflowError, RecursionError, MemoryError) as e:
            return up, None, e

    def _record(self, up: StaticUnpickler, err: Exception | None) -> None:
        stream = up.stream
        self.globals.extend(up.globals)
        self.opcodes |= up.opcodes
        self.streams.append(stream)
        self.pickles.append(PickleStream(stream, up.protocol, tuple(up.first_offsets.items()),
                                         None if err else up.end, up.count))
        self.operations.extend(Operation(stream, o, op, t, d) for o, op, t, d in up.operations)
        if up.protocol is None:
            # no PROTO opcode (protocols 0 and 1): the highest protocol among the opcodes, as pickletools
            # says, over all streams (a legacy file's magic-number pickle alone looks like protocol 0)
            implied = max((_proto_of()[n] for n in up.first_offsets), default=0)
            if self.protocol is None or ("PROTO" not in self.opcodes and implied > self.protocol):
                self.protocol = implied
        elif self.protocol is None:
            self.protocol = up.protocol
        self.anomalies.extend(f"{stream}: {a}" for a in up.anomalies)
        self.notes.extend(f"{stream}: {n}" for n in up.notes)
        if err is not None:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if not isinstance(err, FormatError):
                reason = f"{type(err).__name__}: {reason}"
            self.stops.append(StreamStop(stream, up.stop_offset, reason,
                                         err.field if isinstance(err, LimitExceeded) else None))

    def parse(self, data: bytes, stream: str, *, start: int = 0,
              persistent_load: PersistentLoad | None = None, depth: int = 0,
              file_framing: bool = True, encoding: str = "utf-8", charged: bool = False) -> tuple[Any, int]:
        """Run one stream; returns its value and the offset just past its STOP.

        When the stream stops early (CPython raises there too), everything before the
        stop is kept, the stop is recorded in ``stops`` and ``(None, stop offset)`` is
        returned; a whole-file bound re-raises :class:`LimitExceeded` (nothing more may run).
        Byte strings the stream hands to ``pickle.loads`` and the like are parsed too
        (as ``<stream>>nested@<offset>``), so a payload cannot hide one level down.

        ``file_framing``: read FRAMEs as torch.load reads a zip member (the C unpickler on an
        ``io.BytesIO``); False for bytes given to ``pickle.loads``. When the stream's frames make
        the two readings differ, the other reading is parsed too, as ``<stream>#<other>``.
        ``charged``: the bytes were charged to the budget when they were extracted (a zip member)."""
        self.budget.charge_stream()
        if len(data) - start > self.limits.max_pickle_bytes:
            raise LimitExceeded("max_pickle_bytes", self.limits.max_pickle_bytes,
                                f"pickle stream {stream} of {len(data) - start} bytes")
        if not charged:
            self.budget.charge_bytes(len(data) - start, f"pickle stream {stream}")
        up, value, err = self._run(data, stream, start, persistent_load, file_framing, encoding)
        self._record(up, err)
        self._nested(up, stream, depth)
        self._weights_only_reading(data, stream, start, persistent_load, up, err)
        if up.frame_irregular and not isinstance(err, LimitExceeded):
            self._other_reading(data, stream, start, persistent_load, up, err,
                                file_framing=not file_framing, encoding=encoding)
        if isinstance(err, LimitExceeded):
            raise err
        if err is not None:
            return None, up.stop_offset
        return value, up.end

    def _other_reading(self, data: bytes, stream: str, start: int, persistent_load: PersistentLoad | None,
                       up: StaticUnpickler, err: Exception | None, *, file_framing: bool,
                       encoding: str) -> str | None:
        """The same bytes read as another reader reads them: the other FRAME handling (pickle.loads
        vs a file without peek) or the other string encoding (pickle.load's ASCII vs torch.load's
        UTF-8). Recorded as ``<stream>#<reading>`` when it differs; returns that name then."""
        if encoding != up.encoding:
            name, why = f"{stream}#torch", "torch.load decodes its strings as UTF-8, pickle.load as ASCII"
        else:
            name, why = f"{stream}#{'file' if file_framing else 'contiguous'}", (
                "its FRAMEs make readers differ: pickle.loads reads on contiguously, a file without peek "
                "(torch.load's io.BytesIO) drops the rest of a frame")
        self.budget.charge_stream()
        other, _, err2 = self._run(data, name, start, persistent_load, file_framing, encoding)
        mine = [(g.module, g.name, g.offset) for g in up.globals]
        theirs = [(g.module, g.name, g.offset) for g in other.globals]
        differs = mine != theirs or (err is None) != (err2 is None)
        if differs:
            self._record(other, err2)
            self.anomalies.append(f"{stream}: readers read different pickles ({why}); the other reading is {name}")
        else:
            self.budget.opcodes -= other.count
            self.budget.memo -= len(other._memo)
            self.budget.globals -= len(other.globals)
        if isinstance(err2, LimitExceeded):
            raise err2
        return name if differs else None

    def _weights_only_reading(self, data: bytes, stream: str, start: int,
                              persistent_load: PersistentLoad | None, up: StaticUnpickler,
                              err: Exception | None) -> None:
        """A PROTO above 5 stops CPython but not torch's weights_only unpickler (it warns): read the
        stream on past it as ``<stream>#weights_only`` so safety/ can judge what torch would meet."""
        if err is None or "unsupported pickle protocol" not in str(err):
            return
        name = f"{stream}#weights_only"
        self.budget.charge_stream()
        other = StaticUnpickler(data, name, start=start, persistent_load=persistent_load, limits=self.limits,
                                budget=self.budget, file_framing=up.file_framing, encoding="utf-8")
        other.any_protocol = True
        try:
            other.load()
            err2: Exception | None = None
        except (FormatError, ValueError, OverflowError, RecursionError, MemoryError) as e:
            err2 = e
        self._record(other, err2)
        self.weights_only_reading[stream] = name
        if isinstance(err2, LimitExceeded):
            raise err2

    def _nested(self, up: StaticUnpickler, stream: str, depth: int) -> None:
        for offset, payload in up.nested:
            if depth >= 4:
                self.anomalies.append(f"{stream}: pickles nested more than 4 deep were not scanned")
                break
            self.budget.charge_nested()
            before = len(self.stops)
            self.parse(payload, f"{stream}>nested@{offset}", persistent_load=record_pid, depth=depth + 1,
                       file_framing=False, encoding="ASCII")
            if len(self.stops) > before and not self.globals_in(f"{stream}>nested@{offset}"):
                stop = self.stops.pop()
                self.notes.append(f"{stream}: bytes passed to a loader at byte {offset} are not a pickle "
                                  f"({stop.reason})")

    def globals_in(self, stream: str) -> list[GlobalRef]:
        return [g for g in self.globals if g.stream == stream]

    def parse_file_stream(self, f: CountingFile, offset: int, stream: str, *,
                          persistent_load: PersistentLoad | None = None, file_framing: bool = False,
                          encoding: str | None = None, charged: bool = False) -> tuple[Any, int]:
        """Parse a pickle that starts at ``offset`` in a file, reading only as far as it goes.

        ``file_framing``: FRAMEs as the C unpickler reads a file without peek (torch opens a tar's
        extracted members unbuffered); by default as pickle.load reads a buffered file. ``encoding``:
        how STRING-family opcodes decode; by default ASCII (pickle.load) for ``pickle#0`` at byte 0,
        else UTF-8 (torch.load). ``charged``: the source's bytes are already on the budget (an
        inflated zip member read on demand), so re-reads cost nothing more."""
        chunk = 1 << 12
        self.budget.charge_stream()
        while True:
            n = min(chunk, f.size - offset, self.limits.max_pickle_bytes)
            data = f.pread(offset, n)
            if not charged:
                self.budget.charge_bytes(n, f"pickle stream {stream}")
            # the pickle at byte 0 is also what pickle.load reads: read it as pickle.load does (ASCII
            # strings); torch.load's own reading (UTF-8) is added below where it differs
            if encoding is None:
                encoding = "ASCII" if offset == 0 and stream == "pickle#0" else "utf-8"
            up, value, err = self._run(data, stream, 0, persistent_load, file_framing, encoding)
            if isinstance(err, TruncatedPickle) and offset + n < f.size:
                self.budget.opcodes -= up.count  # read again from the start with more bytes
                self.budget.memo -= len(up._memo)
                self.budget.globals -= len(up.globals)
                if not charged:
                    self.budget.inflated_bytes -= n
                if n >= self.limits.max_pickle_bytes:
                    err = LimitExceeded("max_pickle_bytes", self.limits.max_pickle_bytes, f"pickle stream {stream}")
                else:
                    chunk *= 4
                    continue
            self._record(up, err)
            self._nested(up, stream, 0)
            self._weights_only_reading(data, stream, 0, persistent_load, up, err)
            if up.frame_irregular and not isinstance(err, LimitExceeded):
                # pickle.load on a real file reads a frame bigger than its peek buffer the io.BytesIO way
                self._other_reading(data, stream, 0, persistent_load, up, err, file_framing=not file_framing,
                                    encoding=encoding)
            if up.non_ascii_strings and encoding == "ASCII" and not isinstance(err, LimitExceeded):
                torch_reading = self._other_reading(data, stream, 0, persistent_load, up, err,
                                                    file_framing=file_framing, encoding="utf-8")
                if torch_reading:
                    self.torch_reading[stream] = torch_reading
            if isinstance(err, LimitExceeded):
                raise err
            if err is not None:
                return None, offset + up.stop_offset
            return value, offset + up.end

    def storage_loader(self, legacy: bool = False) -> PersistentLoad:
        def load(pid: Any) -> Any:
            st = storage_from_pid(pid, legacy=legacy)
            st.resizable = legacy  # a zip record's bytes cannot grow; the legacy reader allocates anew
            self.storages.setdefault(st.key, st)
            return st
        return load

    def collect(self, value: Any, stream: str, root: KeyPath = ()) -> Any:
        return collect(value, stream, self.out, limits=self.limits, root=root, budget=self.budget)

    def absorb(self, other: Assembler) -> None:
        """Take over what another reader of the same file recorded: its globals, facts, stops and notes."""
        self.globals.extend(other.globals)
        self.pickles.extend(other.pickles)
        self.operations.extend(other.operations)
        self.stops.extend(other.stops)
        self.notes.extend(other.notes)
        self.anomalies.extend(other.anomalies)
        self.opcodes |= other.opcodes

    def inventory(self, facts: FormatFacts, structure: Any,
                  storages: list[StorageRecord] | None = None) -> Inventory:
        if storages is None:
            storages = [StorageRecord(s.key, s.dtype, s.nbytes, s.location, None) for s in self.storages.values()]
        if self.torch_reading:
            facts = replace(facts, loaded_streams=tuple(self.torch_reading.get(s, s) for s in facts.loaded_streams))
        return Inventory(
            path=self.path,
            facts=facts,
            tensors=tuple(self.out.tensors),
            storages=tuple(storages),
            globals=tuple(replace(g, path=self.out.global_paths.get((g.stream, g.offset)),
                                  torch_resolves=self._torch_resolves(g))
                          for g in self.globals),
            structure=structure,
            metadata=self.out.metadata,
            notes=tuple(self.notes + self.out.notes),
            anomalies=tuple(self.anomalies),
            pickles=tuple(self.pickles),
            operations=tuple(self.operations),
            stops=tuple(self.stops),
        )


    def _torch_resolves(self, g: GlobalRef) -> bool:
        """torch's UnpicklerWrapper.find_class: ``"Storage" in name`` and ``StorageType(name)`` works."""
        name = g.written.rsplit(".", 1)[-1] if g.written else g.name
        if name not in TORCH_STORAGE_TYPES:
            return False
        return any(g.stream == s or g.stream in {f"{s}#{r}" for r in _READINGS} for s in self.wrapper_streams)


_READINGS = ("file", "contiguous", "torch", "weights_only")
"""The other readings of one stream (``<stream>#<reading>``) the Assembler may record."""


def assemblers_of(budget: Budget) -> list[Assembler]:
    """The Assemblers made for one file (registered with its budget), oldest first."""
    return [r for r in budget.readers if isinstance(r, Assembler)]


def storage_alias(pid: Any) -> Any:
    """``torch.Storage`` is ``torch.FloatStorage`` (``StorageType("Storage")`` fails, so torch's UnpicklerWrapper
    imports the real name, whose ``dtype`` is float32): the persistent id as the float storage it is."""
    if isinstance(pid, tuple) and len(pid) > 1 and isinstance(pid[1], Global) and pid[1].qualname == "torch.Storage":
        g = pid[1]
        return (pid[0], Global("torch", "FloatStorage", g.stream, g.offset), *pid[2:])
    return pid
