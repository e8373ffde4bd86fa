"""torch.save zip archives and TorchScript archives (``torch.jit.save``)."""

from __future__ import annotations

from typing import Any

from ..errors import FormatError
from ..inventory import FormatFacts, Inventory, StorageRecord
from ..limits import DEFAULT_LIMITS, Limits
from .common import Assembler, CountingFile, record_pid
from .torchscript_code import torchscript_code_facts
from .zipreader import ZipArchive

_SMALL_RECORDS = ("byteorder", "version", ".data/version", ".format_version", ".storage_alignment")


def read_torch_zip(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    z = ZipArchive(f.f, f.size, limits)
    names = [m.name for m in z.members]
    if not names:
        raise FormatError("zip archive has no entries")
    # torch's reader takes the archive prefix from the first entry, whatever it is called.
    prefix = names[0].split("/", 1)[0]
    data_pkl = f"{prefix}/data.pkl"
    if data_pkl not in z.by_name:
        raise FormatError(f"zip archive without {data_pkl}: not a torch checkpoint")
    outside = [n for n in names if not n.startswith(prefix + "/")]
    is_script = f"{prefix}/constants.pkl" in z.by_name
    fmt = "torchscript" if is_script else "torch-zip"
    asm = Assembler(path, limits)
    if outside:
        asm.anomalies.append(f"{len(outside)} zip entries outside the {prefix}/ folder (torch refuses such archives)")

    records: dict[str, str] = {}
    for rec in _SMALL_RECORDS:
        name = f"{prefix}/{rec}"
        if name in z.by_name and z.by_name[name].size <= 64:
            records[rec] = z.read(name).decode("utf-8", "replace").strip()

    value, _ = asm.parse(z.read(data_pkl), data_pkl, persistent_load=asm.storage_loader())
    structure = asm.collect(value, data_pkl)
    storage_entries = {key: f"{prefix}/data/{key}" for key in asm.storages}
    if is_script:
        consts = Assembler(path, limits)
        cvalue, _ = consts.parse(z.read(f"{prefix}/constants.pkl"), f"{prefix}/constants.pkl",
                                 persistent_load=consts.storage_loader())
        _merge_constants(asm, consts, cvalue, prefix, storage_entries)

    referenced = set(storage_entries.values())
    for m in z.members:
        if m.name in (data_pkl, f"{prefix}/constants.pkl") or m.name in referenced:
            continue
        if _looks_like_pickle_member(z, m.name):
            try:
                asm.parse(z.read(m.name), m.name, persistent_load=record_pid)
            except FormatError as e:
                asm.notes.append(f"{m.name}: could not be parsed as a pickle ({e})")

    for i, shadowed in enumerate(z.shadowed):
        # A second member of the same name: torch reads the last one, other tools may read this.
        if shadowed.name.endswith(".pkl") or z.read_member(shadowed, limit=shadowed.size)[:1] == b"\x80":
            try:
                asm.parse(z.read_member(shadowed), f"{shadowed.name}#shadowed{i}", persistent_load=record_pid)
            except FormatError as e:
                asm.notes.append(f"{shadowed.name} (shadowed copy): could not be parsed as a pickle ({e})")

    storages: list[StorageRecord] = []
    for key, st in asm.storages.items():
        entry = storage_entries.get(key)
        record = z.by_name.get(entry) if entry else None
        if record is None:
            asm.notes.append(f"storage {key!r} has no {entry} record")
        elif st.nbytes is not None and record.size < st.nbytes:
            asm.notes.append(f"storage record {entry} holds {record.size} bytes, the pickle declares {st.nbytes}")
        storages.append(StorageRecord(key, st.dtype, st.nbytes, st.location, entry))

    asm.anomalies[:0] = z.anomalies
    facts = FormatFacts(
        format=fmt,
        file_size=f.size,
        bytes_read=f.bytes_read + z.bytes_read,
        pickle_protocol=asm.protocol,
        byteorder=records.get("byteorder", "little"),
        zip_prefix=prefix,
        zip_entries=tuple(names),
        streams=tuple(asm.streams),
        loaded_streams=() if is_script else (data_pkl,),
        opcodes=tuple(sorted(asm.opcodes)),
        extra={k: v for k, v in records.items() if k != "byteorder"},
    )
    facts.extra.update(torchscript_code_facts(z, prefix, limits) if is_script else {})
    return asm.inventory(facts, structure, storages)


def _merge_constants(asm: Assembler, consts: Assembler, value: Any, prefix: str,
                     storage_entries: dict[str, str]) -> None:
    """TorchScript constants keep their own storage namespace (``constants/<key>``)."""
    stream = f"{prefix}/constants.pkl"
    for key, st in consts.storages.items():
        ckey = f"constants/{key}"
        st.key = ckey
        asm.storages[ckey] = st
        storage_entries[ckey] = f"{prefix}/{ckey}"
    consts.collect(value, stream, root=("__constants__",))
    for t in consts.out.tensors:
        asm.out.tensors.append(t)
    asm.globals.extend(consts.globals)
    asm.opcodes |= consts.opcodes
    asm.streams.extend(consts.streams)
    asm.events.extend(consts.events)
    asm.notes.extend(consts.notes)
    asm.anomalies.extend(consts.anomalies)


def _looks_like_pickle_member(z: ZipArchive, name: str) -> bool:
    if name.endswith((".pkl", ".debug_pkl", ".pickle")):
        return True
    m = z.by_name[name]
    if m.size < 2 or m.size > z.limits.max_pickle_bytes:
        return False
    head = z.read(name, limit=m.size)[:2] if m.size <= 4096 else _head(z, name)
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def _head(z: ZipArchive, name: str) -> bytes:
    m = z.by_name[name]
    if m.method != 0:
        return z.read(name)[:2]
    return z._pread(z.data_offset(m), 2)
