"""Sharded checkpoints: a ``*.index.json`` whose ``weight_map`` names every shard."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..errors import CheckpointError, FormatError
from ..inventory import (
    FormatFacts,
    GlobalRef,
    Inventory,
    Operation,
    PickleStream,
    StorageRecord,
    StreamStop,
    TensorRecord,
)
from ..limits import DEFAULT_LIMITS, Limits
from ..record import replace
from .common import CountingFile


def parse_index(raw: bytes) -> dict[str, Any] | None:
    """The index object if ``raw`` is a shard index, else None."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("weight_map"), dict):
        return obj
    return None


def read_sharded(f: CountingFile, path: str, index: dict[str, Any],
                 read_one: Callable[[str, Limits], Inventory], limits: Limits = DEFAULT_LIMITS) -> Inventory:
    weight_map = index["weight_map"]
    if len(weight_map) > 10_000_000:
        raise FormatError("shard index weight_map is too large")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise FormatError(f"weight_map entry {name!r} does not name a file")
        shards.setdefault(shard, []).append(name)
    if len(shards) > limits.max_shards:
        raise FormatError(f"shard index names {len(shards)} shards (limit {limits.max_shards})")
    base = os.path.dirname(os.path.abspath(path))
    tensors: list[TensorRecord] = []
    storages: list[StorageRecord] = []
    globals_: list[GlobalRef] = []
    notes: list[str] = []
    opcodes: set[str] = set()
    streams: list[str] = []
    loaded: list[str] = []
    anomalies: list[str] = []
    pickles: list[PickleStream] = []
    operations: list[Operation] = []
    stops: list[StreamStop] = []
    bytes_read = f.bytes_read
    formats: dict[str, str] = {}
    for shard, names in shards.items():
        if os.path.isabs(shard) or ".." in shard.replace("\\", "/").split("/"):
            raise FormatError(f"shard {shard!r} lies outside the index's folder")
        shard_path = os.path.join(base, shard)
        try:
            inv = read_one(shard_path, limits)
        except CheckpointError as e:
            raise FormatError(f"shard {shard}: {e.reason}") from None
        if inv.format == "sharded-index":
            raise FormatError(f"shard {shard} is itself an index")
        formats[shard] = inv.format
        bytes_read += inv.facts.bytes_read
        wanted = set(names)
        present = set()
        for t in inv.tensors:
            present.add(t.key)
            tensors.append(replace(t, stream=f"{shard}:{t.stream}",
                                   storage_key=None if t.storage_key is None else f"{shard}:{t.storage_key}"))
        storages.extend(replace(s, key=f"{shard}:{s.key}") for s in inv.storages)
        globals_.extend(replace(g, stream=f"{shard}:{g.stream}") for g in inv.globals)
        opcodes |= set(inv.facts.opcodes)
        streams.extend(f"{shard}:{s}" for s in inv.facts.streams)
        loaded.extend(f"{shard}:{s}" for s in inv.facts.loaded_streams)
        pickles.extend(replace(p, stream=f"{shard}:{p.stream}") for p in inv.pickles)
        operations.extend(replace(o, stream=f"{shard}:{o.stream}") for o in inv.operations)
        stops.extend(replace(st, stream=f"{shard}:{st.stream}") for st in inv.stops)
        notes.extend(f"{shard}: {n}" for n in inv.notes)
        anomalies.extend(f"{shard}: {a}" for a in inv.anomalies)
        missing = sorted(wanted - present)
        if missing:
            notes.append(f"{shard} lacks {len(missing)} tensors the index maps to it, e.g. {missing[0]!r}")
        extra = sorted(present - wanted)
        if extra:
            notes.append(f"{shard} holds {len(extra)} tensors the index does not map to it, e.g. {extra[0]!r}")
    total = index.get("metadata", {}).get("total_size") if isinstance(index.get("metadata"), dict) else None
    facts = FormatFacts(format="sharded-index", file_size=f.size, bytes_read=bytes_read,
                        streams=tuple(streams), loaded_streams=tuple(loaded), opcodes=tuple(sorted(opcodes)),
                        extra={"shards": formats, "total_size": total})
    structure = {t.key: {"__tensor__": i} for i, t in enumerate(tensors)}
    return Inventory(path=path, facts=facts, tensors=tuple(tensors), storages=tuple(storages),
                     globals=tuple(globals_), structure=structure, metadata={}, notes=tuple(notes),
                     anomalies=tuple(anomalies), pickles=tuple(pickles),
                     operations=tuple(operations), stops=tuple(stops))
