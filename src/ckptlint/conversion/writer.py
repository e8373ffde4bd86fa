"""Write safetensors files: the header safetensors itself writes, tensor bytes streamed in, renamed at the end.

The layout is safetensors' own (``safetensors.serialize``): an 8-byte little-endian header length, compact
JSON with ``__metadata__`` first and the tensors in data order (dtype from widest to narrowest as its Rust
``Dtype`` enum orders them, then by name), padded with spaces to a multiple of 8, then the bytes. Output goes
to a temporary file in the destination's folder and is renamed into place only when complete, so a failure
or an interrupt never leaves a half-written DEST. A sharded set is named and indexed as transformers'
``save_pretrained`` does (``model-00001-of-00002.safetensors`` + ``model.safetensors.index.json``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
from collections.abc import Callable, Hashable, Sequence
from typing import BinaryIO

from ..errors import OutputError, UsageError
from ..filenames import special_kind
from ..record import record
from .result import ConvertError

DTYPE_ORDER = ("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
               "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64")
"""safetensors' ``Dtype`` enum order; ``serialize`` writes tensors from the last to the first, then by name."""
_RANK = {d: i for i, d in enumerate(DTYPE_ORDER)}

HASH_PLACEHOLDER = "0" * 64
"""A sha256 hex digest's width: written first, replaced in place once the digest is known."""

SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
"""``--max-shard-size`` units, as transformers / huggingface_hub parse them (decimal)."""


@record
class OutTensor:
    """One tensor to write: its header entry and how its bytes get into the file."""

    name: str
    dtype: str
    """The safetensors dtype code (``F32``, ``BF16`` …)."""
    shape: tuple[int, ...]
    nbytes: int
    write: Callable[[BinaryIO], int]
    """Streams exactly ``nbytes`` into the file at its current position (in bounded chunks); returns the count."""
    storage: Hashable = None
    """The source storage it views (None: its own): tensors of one storage go to one shard, as huggingface_hub
    groups them."""
    storage_nbytes: int | None = None
    """That storage's size, which huggingface_hub counts (once per storage) when it splits shards."""


def data_order(tensors: Sequence[OutTensor]) -> list[OutTensor]:
    return sorted(tensors, key=lambda t: (-_RANK.get(t.dtype, -1), t.name))


def header_bytes(tensors: Sequence[OutTensor], metadata: dict[str, str]) -> tuple[bytes, list[OutTensor]]:
    """The length prefix + padded JSON header, and the tensors in the order their bytes follow it."""
    ordered = data_order(tensors)
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for t in ordered:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, ordered


def parse_size(text: str) -> int:
    """``--max-shard-size``: bytes, or a number with KB/MB/GB/TB (powers of 10, as transformers reads it)."""
    s = text.strip()
    try:
        value = int(s) if s.isdigit() else float(s[:-2]) * SIZE_UNITS[s[-2:].upper()]
    except (KeyError, ValueError, OverflowError):
        raise UsageError(f"--max-shard-size {text!r}: not a size (bytes, or a number with KB, MB, GB or TB, "
                            "e.g. 5GB)") from None
    if not math.isfinite(value) or int(value) < 1:
        raise UsageError(f"--max-shard-size {text!r}: must be at least 1 byte")
    return int(value)


def split_shards(tensors: Sequence[OutTensor], max_size: int) -> list[list[OutTensor]]:
    """huggingface_hub's split (``split_torch_state_dict_into_shards``, what ``save_pretrained`` uses): in order,
    each storage counted once at its size; a new shard when the next storage would tip the current one over
    ``max_size``; one bigger than ``max_size`` gets a shard of its own; every other tensor of a storage joins
    the shard of its first tensor."""
    shards: list[list[OutTensor]] = []
    current: list[OutTensor] = []
    size = 0
    groups: dict[Hashable, list[OutTensor]] = {}
    for t in tensors:
        if t.storage is not None:
            if t.storage in groups:
                groups[t.storage].append(t)
                continue
            groups[t.storage] = [t]
        n = _counted(t)
        if n > max_size:
            shards.append([t])
            continue
        if size + n > max_size and current:
            shards.append(current)
            current, size = [], 0
        current.append(t)
        size += n
    if current or not shards:
        shards.append(current)
    for first, *rest in groups.values():
        if rest:
            next(shard for shard in shards if any(t is first for t in shard)).extend(rest)
    return shards


def total_size(tensors: Sequence[OutTensor]) -> int:
    """The index's ``total_size`` as huggingface_hub computes it: each storage once, at its size."""
    seen: set[Hashable] = set()
    total = 0
    for t in tensors:
        if t.storage is not None:
            if t.storage in seen:
                continue
            seen.add(t.storage)
        total += _counted(t)
    return total


def _counted(t: OutTensor) -> int:
    return t.storage_nbytes if t.storage_nbytes is not None else t.nbytes


def shard_names(dest: str, n: int) -> list[str]:
    """``model.safetensors`` -> ``model-00001-of-00003.safetensors`` …; one shard keeps DEST's own name."""
    if n == 1:
        return [dest]
    stem = dest[: -len(".safetensors")] if dest.endswith(".safetensors") else dest
    return [f"{stem}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def index_name(dest: str) -> str:
    return dest + ".index.json" if dest.endswith(".safetensors") else dest + ".safetensors.index.json"


def index_json(shards: Sequence[Sequence[OutTensor]], names: Sequence[str]) -> str:
    """The index transformers writes: ``{"metadata": {"total_size": …}, "weight_map": {key: file}}``."""
    weight_map = {t.name: os.path.basename(name) for shard, name in zip(shards, names, strict=True) for t in shard}
    total = total_size([t for shard in shards for t in shard])
    return json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n"


def _temporary(dest: str) -> tuple[BinaryIO, str]:
    """A new file next to ``dest`` (same file system, so the final rename is atomic)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".tmp",
                                   dir=os.path.dirname(os.path.abspath(dest)))
    except OSError as e:
        raise OutputError(dest, e.strerror or str(e)) from None
    return os.fdopen(fd, "w+b"), tmp


def write_file(f: BinaryIO, tensors: Sequence[OutTensor], metadata: dict[str, str],
               digest_field: str | None = None) -> int | None:
    """Header and bytes into ``f``. Returns the file offset of ``digest_field``'s placeholder value (patched in
    place later), or None."""
    head, ordered = header_bytes(tensors, metadata)
    f.write(head)
    for t in ordered:
        n = t.write(f)
        if n != t.nbytes:
            raise ConvertError(f"tensor {t.name!r}: {n} bytes written for {t.nbytes} (internal error)")
    if digest_field is None:
        return None
    marker = json.dumps({digest_field: HASH_PLACEHOLDER}, separators=(",", ":"))[1:-1].encode()
    at = head.find(marker)
    return None if at < 0 else at + len(marker) - len(HASH_PLACEHOLDER) - 1


def patch(path: str, offset: int | None, value: str) -> None:
    """Write ``value`` over the placeholder at ``offset`` of the finished file ``path``."""
    if offset is not None:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(value.encode("ascii"))


def publish(tmp: str, dest: str, overwrite: bool) -> None:
    """Move the finished file into place: ``os.replace`` with ``overwrite``, else a link that fails when
    DEST appeared meanwhile (no file is ever clobbered without ``--overwrite``)."""
    try:
        if overwrite:
            os.replace(tmp, dest)
            return
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise OutputError(dest, "exists (use --overwrite to replace it)") from None
        except OSError:  # a file system without hard links: check, then rename
            if os.path.lexists(dest):
                raise OutputError(dest, "exists (use --overwrite to replace it)") from None
            os.replace(tmp, dest)
            return
        os.unlink(tmp)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(dest, e.strerror or str(e)) from None


@record
class Written:
    """The files one conversion wrote."""

    files: tuple[str, ...]
    """The safetensors files, in shard order."""
    index: str | None
    """The shard index file, when the output is sharded."""


def write_set(dest: str, tensors: Sequence[OutTensor], metadata: dict[str, str], *, max_shard_size: int | None,
              overwrite: bool, digest: Callable[[], str] | None = None, digest_field: str | None = None) -> Written:
    """One file, or shards + index, all or nothing. ``digest`` is called once every byte is written (the
    source's sha256, which a thread may compute meanwhile); it replaces ``digest_field``'s placeholder."""
    shards = [list(tensors)] if max_shard_size is None else split_shards(tensors, max_shard_size)
    names = shard_names(dest, len(shards))
    index = index_name(dest) if len(shards) > 1 else None
    targets = [*names, *([index] if index else [])]
    for name in targets:
        kind = special_kind(name) or ("a folder" if os.path.isdir(name) else None)
        if kind is not None:  # --overwrite must never put a file in the place of /dev/null or a folder
            raise OutputError(name, f"not a regular file ({kind}): give a file name to write")
        if not overwrite and os.path.lexists(name):
            raise OutputError(name, "exists (use --overwrite to replace it)")
    temps: list[str] = []
    published: list[str] = []
    try:
        placeholders: list[tuple[str, int | None]] = []
        for name, shard in zip(names, shards, strict=True):  # one open file at a time, however many shards
            f, tmp = _temporary(name)
            temps.append(tmp)
            with f:
                placeholders.append((tmp, write_file(f, shard, metadata, digest_field)))
        if digest is not None:
            value = digest()
            for tmp, at in placeholders:
                patch(tmp, at, value)
        if index:
            g, tmp = _temporary(index)
            temps.append(tmp)
            with g:
                g.write(index_json(shards, names).encode("utf-8"))
        for tmp, name in zip(temps, targets, strict=True):
            publish(tmp, name, overwrite)
            published.append(name)
    except BaseException:
        for path in [*temps[len(published):], *published]:  # a set is all or nothing
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    return Written(tuple(names), index)
