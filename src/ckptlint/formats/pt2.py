"""A ``torch.export`` archive (``.pt2``): its parameters and buffers, from the weights config JSON.

``torch.export.save`` writes a zip with ``archive_format`` = ``pt2``, the graph in
``models/<name>.json`` and each weight as a raw file named by
``data/weights/<name>_weights_config.json`` (dtype as the export schema's ScalarType, sizes,
strides). torch.load cannot open it (no data.pkl); torch.export.load can. The JSON is read, and
the pickles torch.export.load runs (``use_pickle`` weights and tensor constants: torch.load with
weights_only=False; custom and opaque objects: ``_pickle_load_obj`` / ``pickle.loads``) go through
the static machine, so their globals are reported like any checkpoint's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import FormatError
from ..inventory import FormatFacts, Inventory, StorageRecord, TensorRecord
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .common import Assembler, CountingFile, record_pid
from .zipreader import Reader, ZipArchive, open_archive

# torch/_export/serde/schema.py ScalarType
SCALAR_TYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32",
                8: "float64", 9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16",
                28: "uint16", 29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz",
                32: "float8_e5m2fnuz", 33: "float8_e8m0fnu", 34: "uint32", 35: "uint64"}
CONFIG = "data/weights/model_weights_config.json"
CONSTANTS = "data/constants/model_constants_config.json"
REFUSED = "PytorchStreamReader failed locating file data.pkl: file not found (a torch.export archive)"


def pt2_prefix(z: ZipArchive) -> str | None:
    """The archive's folder when it is a torch.export archive (``<prefix>/archive_format`` says pt2)."""
    if b"archive_format\x00" not in b"\x00".join(z.raw_names) + b"\x00":
        return None  # no name ends so (a test in C: a torch checkpoint has 100,000s of entries)
    for m in z.members:
        # the raw name first: its decoded form ends so exactly when the bytes do (ASCII), and every
        # torch checkpoint's entry (100,000s) is looked at without decoding its name
        if m.raw_name.endswith(b"archive_format") and m.name.count("/") == 1 and m.size <= 16:
            prefix = m.name.split("/")[0]
            if z.locate(prefix + "/data.pkl") is None and z.read_member(m).strip() == b"pt2":
                return prefix
    return None


def read_pt2(f: CountingFile, path: str, z: ZipArchive, prefix: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    import json

    try:
        config = json.loads(z.read(f"{prefix}/{CONFIG}", limits.max_header_bytes))
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"torch.export archive: {CONFIG} is not JSON ({e})") from None
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise FormatError(f"torch.export archive: {CONFIG} has no 'config' object")
    tensors: list[TensorRecord] = []
    storages: list[StorageRecord] = []
    structure: dict[str, Any] = {}
    notes: list[str] = []
    for name, spec in entries.items():
        record = _tensor(name, spec, z, prefix)
        if record is None:
            structure[name] = {"__object__": "unreadable weight entry"}
            continue
        if isinstance(spec, dict) and spec.get("use_pickle"):
            notes.append(f"{name} is stored as a torch.save pickle ({record.storage_key}), which "
                         "torch.export.load unpickles")
        structure[name] = {"__tensor__": len(tensors)}
        tensors.append(record)
        storages.append(StorageRecord(str(record.storage_key), record.dtype, record.storage_bytes, record.device,
                                      record.storage_key, record.storage_bytes))
    notes.append("torch.export archive (.pt2): load it with torch.export.load(path); "
                 "its state_dict holds the parameters and persistent buffers listed here")
    asm = Assembler(path, limits, budget=f.budget)
    _embedded_pickles(z, prefix, entries, asm, limits)
    facts = FormatFacts(format="torch-export", file_size=f.size, bytes_read=f.bytes_read,
                        pickle_protocol=asm.protocol, zip_prefix=prefix, zip_entries=tuple(m.name for m in z.members),
                        streams=tuple(asm.streams), loaded_streams=tuple(asm.streams),
                        opcodes=tuple(sorted(asm.opcodes)), extra={"torch_refuses": REFUSED})
    inv = asm.inventory(facts, structure, storages)
    return replace(inv, tensors=tuple(tensors), notes=(*inv.notes, *notes),
                   anomalies=(*inv.anomalies, *z.anomalies))


def _embedded_pickles(z: ZipArchive, prefix: str, weights: dict[str, Any], asm: Assembler, limits: Limits) -> None:
    """Parse every payload torch.export.load unpickles."""
    payloads = [f"data/weights/{spec.get('path_name')}" for spec in weights.values()
                if isinstance(spec, dict) and spec.get("use_pickle")]
    import json

    try:
        constants = json.loads(z.read(f"{prefix}/{CONSTANTS}", limits.max_header_bytes))
    except (FormatError, ValueError, UnicodeDecodeError):
        constants = {}
    config = constants.get("config") if isinstance(constants, dict) else None
    for spec in (config.values() if isinstance(config, dict) else ()):
        name = spec.get("path_name") if isinstance(spec, dict) else None
        if isinstance(name, str) and (spec.get("use_pickle") or not name.startswith("tensor")):
            payloads.append(f"data/constants/{name}")
    for member in payloads:
        data = z.read(f"{prefix}/{member}")
        if data[:4] == b"PK\x03\x04":  # a torch.save archive: its data.pkl
            inner = ZipArchive(_reader(data), len(data), limits, asm.budget)
            pkl = next((m for m in inner.members if m.name.endswith("/data.pkl")), None)
            if pkl is not None:
                asm.parse(inner.read_member(pkl), f"{member}/data.pkl", persistent_load=record_pid)
        else:
            asm.parse(data, member, file_framing=False)


def _ints(values: Any) -> tuple[int, ...] | None:
    if not isinstance(values, list):
        return None
    out = [v.get("as_int") if isinstance(v, dict) else None for v in values]
    return tuple(out) if all(isinstance(v, int) for v in out) else None  # type: ignore[arg-type]


def _dtype(code: Any) -> str:
    return SCALAR_TYPES.get(code, "unknown") if isinstance(code, int) else "unknown"


def _tensor(name: str, spec: Any, z: ZipArchive, prefix: str) -> TensorRecord | None:
    meta = spec.get("tensor_meta") if isinstance(spec, dict) else None
    if not isinstance(meta, dict):
        return None
    shape = _ints(meta.get("sizes"))
    if shape is None:
        return None
    member = f"{prefix}/data/weights/{spec.get('path_name')}"
    found = z.locate(member)
    device = meta.get("device", {}).get("type", "cpu") if isinstance(meta.get("device"), dict) else "cpu"
    offset = meta.get("storage_offset", {})
    return TensorRecord(path=(name,), dtype=_dtype(meta.get("dtype")), shape=shape,
                        stride=_ints(meta.get("strides")), storage_offset=offset.get("as_int", 0)
                        if isinstance(offset, dict) else 0, storage_key=member,
                        storage_bytes=None if found is None else found.size, device=str(device),
                        is_parameter=bool(spec.get("is_param")), requires_grad=bool(meta.get("requires_grad")),
                        rebuild="torch.export", stream=member)


def open_pt2(f: CountingFile, limits: Limits = DEFAULT_LIMITS) -> tuple[ZipArchive, str] | None:
    """(archive, prefix) when the zip is a torch.export archive; None for anything else (the torch zip
    reader then reads it and reports its own errors)."""
    try:
        z = open_archive(f, limits, Budget(limits))  # the file's one parse of its directory
        prefix = pt2_prefix(z)
    except (FormatError, ValueError, OverflowError):
        return None
    return None if prefix is None else (z, prefix)


def _reader(data: bytes) -> Reader:
    def read(offset: int, n: int) -> bytes:
        return data[offset:offset + n]
    return read
