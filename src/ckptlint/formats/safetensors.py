"""safetensors files: the JSON header only, validated the way the Rust reader does."""

from __future__ import annotations

import json
import struct
from typing import Any

from ..errors import FormatError, LimitExceeded
from ..inventory import FormatFacts, Inventory, StorageRecord, TensorRecord
from ..limits import DEFAULT_LIMITS, Limits
from .common import CountingFile
from .dtypes import SAFETENSORS_BITS, SAFETENSORS_DTYPES, contiguous_stride


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 8 + n <= size


def read_safetensors(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """The header, validated like the Rust reader, in time and memory linear in its size.

    Entries are counted (and charged to the file's budget) before the JSON is parsed, and each
    parsed entry is dropped as soon as its records are built, so a huge header is refused early
    instead of costing gigabytes."""
    budget = f.budget
    n = struct.unpack("<Q", f.pread(0, 8))[0]
    if n > limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", limits.max_header_bytes, f"safetensors header of {n} bytes")
    if 8 + n > f.size:
        raise FormatError("safetensors header runs past the end of the file")
    raw = f.pread(8, n)
    budget.charge_bytes(n, "safetensors header")
    counts = {raw.count(k) for k in (b'"data_offsets"', b'"dtype"', b'"shape"')}
    budget.charge_tensors(max(counts))
    try:
        text = raw.decode("utf-8")
        del raw
        parsed = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"safetensors header is not valid JSON ({e})") from None
    if not isinstance(parsed, dict):
        raise FormatError("safetensors header is not a JSON object")
    if counts != {len(parsed) - ("__metadata__" in parsed)}:
        # a key may repeat (serde refuses duplicates): parse again keeping every pair to find it
        parsed = _no_duplicates(json.loads(text, object_pairs_hook=_checked))
    del text
    header: dict[str, object] = parsed
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise FormatError("safetensors __metadata__ must map strings to strings")
    buffer_len = f.size - 8 - n
    tensors: list[TensorRecord] = []
    storages: list[StorageRecord] = []
    spans: list[tuple[int, int, int]] = []
    names = list(header)
    base = 8 + n
    for i, name in enumerate(names):
        info = header.pop(name)
        dtype, shape, begin, end = _entry(name, info)
        nbits = SAFETENSORS_BITS[dtype]
        numel = 1
        for s in shape:
            numel *= s
        if (numel * nbits) % 8:
            raise FormatError(f"safetensors tensor {name!r} does not fill whole bytes")
        if end - begin != numel * nbits // 8:
            raise FormatError(f"safetensors tensor {name!r}: {end - begin} bytes for {numel} {dtype} elements")
        spans.append((begin, end, i))
        tdtype = SAFETENSORS_DTYPES[dtype]
        tensors.append(TensorRecord(
            path=(name,), dtype=tdtype, shape=shape, stride=contiguous_stride(shape), storage_offset=0,
            storage_key=name, storage_bytes=end - begin, device="cpu", rebuild="safetensors", stream="header"))
        storages.append(StorageRecord(name, tdtype, end - begin, "cpu", f"bytes {base + begin}-{base + end}",
                                      end - begin))
    spans.sort()
    pos = 0
    for begin, end, i in spans:
        if begin != pos:
            raise FormatError(f"safetensors tensor {names[i]!r} does not start where the previous one ends")
        pos = end
    if pos != buffer_len:
        raise FormatError(f"safetensors data is {buffer_len} bytes, the header accounts for {pos}")
    facts = FormatFacts(format="safetensors", file_size=f.size, bytes_read=f.bytes_read,
                        extra={"metadata": metadata or {}, "header_bytes": n})
    notes = []
    if metadata:
        present = set(names)
        aliases = {k: v for k, v in metadata.items() if v in present and k not in present}
        if aliases:
            notes.append(f"{len(aliases)} tied weights stored once (save_model aliases): "
                         + ", ".join(f"{k} -> {v}" for k, v in sorted(aliases.items())[:5]))
    structure = {name: {"__tensor__": i} for i, name in enumerate(names)}
    return Inventory(path=path, facts=facts, tensors=tuple(tensors), storages=tuple(storages), globals=(),
                     structure=structure, metadata={}, notes=tuple(notes))


def _entry(name: str, info: object) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(info, dict):
        raise FormatError(f"safetensors entry {name!r} is not an object")
    dtype = info.get("dtype")
    shape = info.get("shape")
    offsets = info.get("data_offsets")
    if dtype not in SAFETENSORS_BITS:
        raise FormatError(f"safetensors tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise FormatError(f"safetensors tensor {name!r} has a malformed shape")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise FormatError(f"safetensors tensor {name!r} has malformed data_offsets")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _checked(pairs: list[tuple[str, object]]) -> dict[str, object]:
    return _no_duplicates(pairs)


def _no_duplicates(pairs: Any) -> dict[str, object]:
    if isinstance(pairs, dict):
        return pairs
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise FormatError(f"safetensors header repeats the key {k!r}")
            seen.add(k)
    return d
