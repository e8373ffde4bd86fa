"""A torch.distributed.checkpoint (DCP) folder: its ``.metadata`` pickle, read statically.

DCP's ``FileSystemReader.read_metadata`` runs ``pickle.load`` on ``.metadata``; here the static
machine reads it instead, and each ``TensorStorageMetadata`` (dtype, global size) becomes a
tensor record at the path the planner flattened it from (``planner_data``), so compat sees the
same nested state_dict the saver passed to ``dcp.save``. The ``.distcp`` shards hold only bytes.
"""

from __future__ import annotations

import os
from typing import Any

from ..inventory import FormatFacts, Inventory, TensorRecord
from ..limits import DEFAULT_LIMITS, Limits
from ..record import replace
from .common import Assembler, CountingFile

TENSOR_META = "torch.distributed.checkpoint.metadata.TensorStorageMetadata"
BYTES_META = "torch.distributed.checkpoint.metadata.BytesStorageMetadata"
METADATA = "torch.distributed.checkpoint.metadata.Metadata"


def is_dcp_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ".metadata"))


def read_dcp(path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """The DCP checkpoint in folder ``path`` as one Inventory (tensors from ``.metadata``)."""
    meta_path = os.path.join(path, ".metadata")
    f = CountingFile(meta_path, limits)
    try:
        asm = Assembler(meta_path, limits, budget=f.budget)
        # pickle.load on a buffered file: frames read contiguously
        value, _ = asm.parse(f.pread(0, min(f.size, limits.max_pickle_bytes)), ".metadata", file_framing=False)
        raw = asm.collect(value, ".metadata") if value is not None else None
        size, read = f.size, f.bytes_read
    finally:
        f.close()
    shards = sorted(n for n in os.listdir(path) if n.endswith(".distcp"))
    tensors, structure, notes = _state_dict(raw)
    notes.append(f"DCP checkpoint: {len(shards)} .distcp shard file(s); shapes are the global (unsharded) ones")
    facts = FormatFacts(format="dcp", file_size=size, bytes_read=read, pickle_protocol=asm.protocol,
                        streams=tuple(asm.streams), loaded_streams=tuple(asm.streams),
                        opcodes=tuple(sorted(asm.opcodes)), extra={"dcp_shards": shards})
    inv = asm.inventory(facts, structure)
    return replace(inv, path=path, tensors=tuple(tensors), notes=(*inv.notes, *notes))


def _state_dict(raw: Any) -> tuple[list[TensorRecord], Any, list[str]]:
    state = raw.get("state") if isinstance(raw, dict) and raw.get("__object__") == METADATA else None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict_metadata"), dict):
        return [], raw, ["DCP .metadata does not hold a Metadata object with state_dict_metadata"]
    planned = state.get("planner_data")
    planner: dict[str, Any] = planned if isinstance(planned, dict) else {}
    tensors: list[TensorRecord] = []
    structure: dict[str, Any] = {}
    notes: list[str] = []
    for fqn, meta in state["state_dict_metadata"].items():
        path = _path(planner.get(fqn), fqn)
        node = _deref(state, meta)
        cls = node.get("__object__") if isinstance(node, dict) else None
        if cls == TENSOR_META:
            record = _tensor(state, node, path)
            if record is not None:
                _put(structure, path, {"__tensor__": len(tensors)})
                tensors.append(record)
                continue
        _put(structure, path, {"__object__": str(cls or "unknown")})
    return tensors, structure, notes


def _path(planned: Any, fqn: str) -> tuple[Any, ...]:
    if isinstance(planned, list) and planned and all(isinstance(p, (str, int)) for p in planned):
        return tuple(planned)
    return (fqn,)


def _put(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node = root
    for p in path[:-1]:
        nxt = node.setdefault(str(p), {})
        if not isinstance(nxt, dict):
            return
        node = nxt
    node[str(path[-1])] = value


def _deref(state: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """Follow a collected ``{"__ref__": "a/b/__state__/1"}`` marker (a memoised object seen before)."""
    if not (isinstance(node, dict) and set(node) == {"__ref__"}) or depth > 20:
        return node
    cur: Any = state
    for part in str(node["__ref__"]).split("/"):
        if isinstance(cur, dict) and part == "__state__":
            cur = cur.get("state")
        elif isinstance(cur, dict) and "__object__" in cur and isinstance(cur.get("state"), dict) \
                and part in cur["state"]:
            cur = cur["state"][part]
        elif isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return _deref(state, cur, depth + 1)


def _tensor(state: dict[str, Any], node: dict[str, Any], path: tuple[Any, ...]) -> TensorRecord | None:
    fields = node.get("state")
    if not isinstance(fields, dict):
        return None
    size = _deref(state, fields.get("size"))
    props = _deref(state, fields.get("properties"))
    if not isinstance(size, list) or not all(isinstance(d, int) and d >= 0 for d in size):
        return None
    dtype = "unknown"
    pstate = props.get("state") if isinstance(props, dict) else None
    first = _deref(state, pstate[0] if isinstance(pstate, list) and pstate else
                   pstate.get("dtype") if isinstance(pstate, dict) else None)
    if isinstance(first, dict) and isinstance(first.get("__global__"), str):
        dtype = first["__global__"].removeprefix("torch.")
    return TensorRecord(path=path, dtype=dtype, shape=tuple(size), stride=None, storage_offset=0,
                        storage_key=None, storage_bytes=None, device="cpu", rebuild="dcp", stream=".metadata")
