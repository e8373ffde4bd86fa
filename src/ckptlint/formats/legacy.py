"""The legacy non-zip torch format, raw pickles, and the oldest tar format.

Legacy files (``_use_new_zipfile_serialization=False``) are five pickles in a
row — magic number, protocol version, sys_info, the object, the storage keys —
followed by each storage as an 8-byte element count and its raw bytes. We
parse the pickles and step over the storages by their declared sizes; tensor
bytes are never read.
"""

from __future__ import annotations

import struct
import tarfile
from typing import Any

from ..errors import FormatError
from ..inventory import FormatFacts, Inventory, StorageRecord
from ..limits import DEFAULT_LIMITS, Limits
from .common import Assembler, CountingFile, record_pid
from .dtypes import ITEMSIZE

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


def read_pickle_file(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """A file that starts with a pickle: the legacy torch format or a raw pickle."""
    asm = Assembler(path, limits)
    first, end = asm.parse_file_stream(f, 0, "pickle#0", persistent_load=asm.storage_loader(legacy=True))
    if type(first) is int and first == MAGIC_NUMBER:
        return _read_legacy(f, path, asm, end)
    structure = asm.collect(first, "pickle#0")
    if end < f.size:
        asm.anomalies.append(f"{f.size - end} bytes follow the pickle's STOP")
        _scan_trailing_pickles(f, asm, end)
    facts = FormatFacts(
        format="pickle", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
        streams=tuple(asm.streams), loaded_streams=("pickle#0",), opcodes=tuple(sorted(asm.opcodes)),
    )
    return asm.inventory(facts, structure)


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


def _read_legacy(f: CountingFile, path: str, asm: Assembler, offset: int) -> Inventory:
    loader = asm.storage_loader(legacy=True)
    version, offset = asm.parse_file_stream(f, offset, "pickle#1", persistent_load=loader)
    if version != PROTOCOL_VERSION:
        raise FormatError(f"legacy torch file with unknown protocol version {version!r}")
    sys_info, offset = asm.parse_file_stream(f, offset, "pickle#2", persistent_load=loader)
    obj, offset = asm.parse_file_stream(f, offset, "pickle#3", persistent_load=_legacy_loader(asm))
    keys, offset = asm.parse_file_stream(f, offset, "pickle#4", persistent_load=loader)
    structure = asm.collect(obj, "pickle#3")
    little = True
    if isinstance(sys_info, dict):
        little = bool(sys_info.get("little_endian", True))
    storages: list[StorageRecord] = []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise FormatError("legacy torch file: storage key list is malformed")
    if len(keys) > len(asm.storages) + 1:
        raise FormatError("legacy torch file lists more storages than its pickle declares")
    for key in keys:
        st = asm.storages.get(key)
        if st is None:
            asm.notes.append(f"storage key {key!r} is not referenced by the pickle")
            break
        head = f.pread(offset, 8)
        if len(head) < 8:
            asm.notes.append(f"file ends before storage {key!r}")
            break
        count = struct.unpack("<q" if little else ">q", head)[0]
        itemsize = ITEMSIZE.get(st.dtype, 1) if st.typed else 1
        on_disk = count * itemsize
        start = offset + 8
        if on_disk != st.nbytes:
            asm.notes.append(f"storage {key!r}: {on_disk} bytes on disk, the pickle declares {st.nbytes}")
        if not 0 <= on_disk <= f.size - start:
            asm.notes.append(f"storage {key!r} runs past the end of the file")
            break
        storages.append(StorageRecord(key, st.dtype, st.nbytes, st.location, f"bytes {start}-{start + on_disk}"))
        offset = start + on_disk
    for key, st in asm.storages.items():
        if key not in keys:
            storages.append(StorageRecord(key, st.dtype, st.nbytes, st.location, None))
    facts = FormatFacts(
        format="torch-legacy", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
        byteorder="little" if little else "big", streams=tuple(asm.streams),
        loaded_streams=tuple(f"pickle#{i}" for i in range(5)),
        opcodes=tuple(sorted(asm.opcodes)),
        extra={"sys_info": _plain_sys_info(sys_info)},
    )
    return asm.inventory(facts, structure, storages)


def _legacy_loader(asm: Assembler) -> Any:
    storage = asm.storage_loader(legacy=True)

    def load(pid: Any) -> Any:
        # ('module', cls, source_file, source): a pickled nn.Module class.
        if isinstance(pid, tuple) and pid and pid[0] == "module" and len(pid) >= 2:
            return pid[1]
        return storage(pid)
    return load


def is_tar(f: CountingFile) -> bool:
    return f.size >= 512 and f.pread(257, 5) == b"ustar"


def read_tar(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """The PyTorch 0.1 tar format: recognised, its object pickle scanned."""
    asm = Assembler(path, limits)
    f.seek(0)
    try:
        tf = tarfile.open(fileobj=f.f, mode="r:")  # noqa: SIM115
        members = []
        for i, m in enumerate(tf):
            if i >= limits.max_zip_entries:
                raise FormatError("tar archive has too many members")
            members.append(m)
    except tarfile.TarError as e:
        raise FormatError(f"tar archive unreadable: {e}") from None
    names = [m.name for m in members]
    if "pickle" not in names:
        raise FormatError("tar archive without a 'pickle' member: not a torch checkpoint")
    structure: Any = None
    for m in members:
        if m.name not in ("pickle", "sys_info") or not m.isfile():
            continue
        if m.size > limits.max_pickle_bytes:
            raise FormatError(f"tar member {m.name!r} is too large")
        data = f.pread(m.offset_data, m.size)
        value, _ = asm.parse(data, m.name, persistent_load=record_pid)
        if m.name == "pickle":
            structure = asm.collect(value, m.name)
    asm.notes.append("tar format (PyTorch 0.1): tensor records are not decoded; torch.load(weights_only=True) refuses it")
    facts = FormatFacts(
        format="torch-tar", file_size=f.size, bytes_read=f.bytes_read, pickle_protocol=asm.protocol,
        zip_entries=tuple(names), streams=tuple(asm.streams), opcodes=tuple(sorted(asm.opcodes)),
    )
    return asm.inventory(facts, structure)


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
