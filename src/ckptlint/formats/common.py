"""Shared plumbing for the format readers: counted reads and inventory assembly."""

from __future__ import annotations

import os
import pickletools
from dataclasses import replace
from typing import Any, BinaryIO

from ..errors import FormatError
from ..inventory import FormatFacts, GlobalRef, Inventory, KeyPath, PickleEvent, StorageRecord
from ..limits import DEFAULT_LIMITS, Limits
from .collect import Collected, collect
from .unpickler import PersistentLoad, StaticUnpickler, Storage, TruncatedPickle


class CountingFile:
    """A read-only file that counts the bytes it hands out ("bytes actually read")."""

    def __init__(self, path: str) -> None:
        self.f: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self.f.fileno()).st_size
        self.bytes_read = 0

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


def record_pid(pid: Any) -> Any:
    """Persistent ids in streams torch never loads (or nested ones) are recorded, never resolved."""
    return {"__persistent_id__": repr(pid)[:200]}


class Assembler:
    """Collects what the pickle streams of one file yield into an Inventory."""

    def __init__(self, path: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.out = Collected()
        self.globals: list[GlobalRef] = []
        self.opcodes: set[str] = set()
        self.streams: list[str] = []
        self.protocol: int | None = None
        self.notes: list[str] = []
        self.storages: dict[str, Storage] = {}
        self.events: list[PickleEvent] = []
        self.anomalies: list[str] = []

    def parse(self, data: bytes, stream: str, *, start: int = 0,
              persistent_load: PersistentLoad | None = None, depth: int = 0) -> tuple[Any, int]:
        """Run one stream; returns its value and the offset just past its STOP.

        Byte strings the stream hands to ``pickle.loads`` and the like are parsed too
        (as ``<stream>>nested@<offset>``), so a payload cannot hide one level down."""
        if len(self.streams) >= self.limits.max_streams:
            raise FormatError(f"more than {self.limits.max_streams} pickle streams")
        up = StaticUnpickler(data, stream, start=start, persistent_load=persistent_load, limits=self.limits)
        try:
            value = up.load()
        finally:
            self.globals.extend(up.globals)
        self.opcodes |= up.opcodes
        self.events.extend(PickleEvent(stream, o, k, d) for o, k, d in up.wo_events)
        self.streams.append(stream)
        if up.protocol is None:
            # no PROTO opcode (protocols 0 and 1): the highest protocol among the opcodes, as pickletools
            # says, over all streams (a legacy file's magic-number pickle alone looks like protocol 0)
            implied = max((op.proto for op in pickletools.opcodes if op.name in up.opcodes), default=0)
            if self.protocol is None or ("PROTO" not in self.opcodes and implied > self.protocol):
                self.protocol = implied
        elif self.protocol is None:
            self.protocol = up.protocol
        self.anomalies.extend(f"{stream}: {a}" for a in up.anomalies)
        for offset, payload in up.nested[:16]:
            if depth >= 4:
                self.anomalies.append(f"{stream}: pickles nested more than 4 deep were not scanned")
                break
            try:
                self.parse(bytes(payload), f"{stream}>nested@{offset}", persistent_load=record_pid,
                           depth=depth + 1)
            except FormatError as e:
                self.notes.append(f"{stream}: bytes passed to a loader at byte {offset} are not a pickle ({e})")
        return value, up.end

    def parse_file_stream(self, f: CountingFile, offset: int, stream: str, *,
                          persistent_load: PersistentLoad | None = None) -> tuple[Any, int]:
        """Parse a pickle that starts at ``offset`` in a file, reading only as far as it goes."""
        chunk = 1 << 12
        while True:
            n = min(chunk, f.size - offset, self.limits.max_pickle_bytes)
            data = f.pread(offset, n)
            try:
                value, end = self.parse(data, stream, persistent_load=persistent_load)
                return value, offset + end
            except TruncatedPickle:
                if offset + n >= f.size:
                    raise
                if n >= self.limits.max_pickle_bytes:
                    raise FormatError(f"pickle stream larger than {self.limits.max_pickle_bytes} bytes") from None
                self.globals = [g for g in self.globals if g.stream != stream]
                chunk *= 4

    def storage_loader(self, legacy: bool = False) -> PersistentLoad:
        from .unpickler import storage_from_pid

        def load(pid: Any) -> Any:
            st = storage_from_pid(pid, legacy=legacy)
            self.storages.setdefault(st.key, st)
            return st
        return load

    def collect(self, value: Any, stream: str, root: KeyPath = ()) -> Any:
        return collect(value, stream, self.out, limits=self.limits, root=root)

    def inventory(self, facts: FormatFacts, structure: Any,
                  storages: list[StorageRecord] | None = None) -> Inventory:
        if storages is None:
            storages = [StorageRecord(s.key, s.dtype, s.nbytes, s.location, None) for s in self.storages.values()]
        return Inventory(
            path=self.path,
            facts=facts,
            tensors=tuple(self.out.tensors),
            storages=tuple(storages),
            globals=tuple(replace(g, path=self.out.global_paths.get((g.stream, g.offset)))
                          for g in self.globals),
            structure=structure,
            metadata=self.out.metadata,
            notes=tuple(self.notes + self.out.notes),
            events=tuple(self.events),
            anomalies=tuple(self.anomalies),
        )
