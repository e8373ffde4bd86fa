"""Each tensor's bytes as ``torch.load`` gives them, read from the file without unpickling anything.

The Inventory already says, per tensor, its dtype, shape, strides, storage offset and storage key, and per
storage where its bytes are (``StorageRecord.entry``). :func:`open_source` turns that into byte streams:

- torch zip and TorchScript archives: the storage's zip member, found with miniz's lookup (the entry torch
  reads among duplicates); stored members are read in place, deflated ones inflated once to a temporary file
  (miniz semantics: a stream longer than declared is cut, a shorter or corrupt one is torch's error);
  a torch zip whose ``byteorder`` record says ``big`` is byte-swapped per storage element as
  ``Storage.byteswap(dtype)`` does (so an untyped ``uint8`` storage, as torch >= 2.1 writes for uint16/fp8
  tensors, is not swapped: torch does not swap it either);
- legacy files (and a tar that falls back to one): the ``bytes S-E`` range after each storage's count;
- old torch tar files: the storage's bytes inside the ``storages`` member, found by walking its headers with
  the reader's own static unpickler (the Inventory records keys, not these offsets);
- shard indexes: each shard opened as its own source; safetensors files: the header's byte ranges;
  torch.export archives (``.pt2``): each weight's raw member (a weight kept as a pickle is refused);
- raw pickles (``pickle.dump`` of tensors): each storage's nested ``torch.save`` (:mod:`.inline`);
- DCP folders: each tensor (or each chunk a rank saved) is a ``torch.save`` nested in a ``.distcp`` file
  (:mod:`.dcpitems`).

Views are materialised through their strides (:mod:`ckptlint.conversion.materialize`), so peak memory is
bounded by the chunk size, never by a storage's or the file's size. Torch is never imported.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CheckpointError, FormatError
from ..errors import TensorBytesError as TensorBytesError
from ..errors import TensorDataError as TensorDataError
from ..errors import UnsupportedTensor as UnsupportedTensor
from ..formats.dtypes import ITEMSIZE
from ..inventory import Inventory, TensorRecord
from ..limits import DEFAULT_LIMITS, Limits
from ..record import record, replace
from .dtypes import itemsize, safetensors_code
from .locate import Data, FileData, Opened, locate
from .materialize import DEFAULT_WINDOW, byteswapped, coalesce, span_elements, strided_chunks

if TYPE_CHECKING:
    from .dcpitems import Item

_T = TypeVar("_T")

DEFAULT_CHUNK = 16 << 20
"""Bytes per piece :meth:`TensorSource.tensor_chunks` yields by default."""

_CONTENT_ERRORS = (ValueError, OverflowError, struct.error, RecursionError, EOFError, UnicodeError)
"""What hostile bytes can make the standard library raise while a storage is located (as formats/ lists)."""

_TYPED_BY_STORAGE = frozenset({"_rebuild_tensor_v2", "_rebuild_tensor"})
"""Rebuilds whose tensor dtype is its storage's (``_rebuild_tensor_v3`` passes its own)."""

_EXPANDED_BYTES = 1 << 30
"""A view repeating its storage (stride 0) whose copy would be larger than this and than 64 times the
storage bytes it reads is refused: a few bytes of file must not turn into terabytes of output."""



@record
class FileSpan:
    """A contiguous tensor whose bytes lie as-is in a file: ``length`` bytes at ``offset`` of ``path``
    (a writer may copy them with ``os.copy_file_range``/``sendfile`` instead of through Python)."""

    path: str
    offset: int
    length: int


def open_source(path: str | os.PathLike[str], inventory: Inventory, limits: Limits = DEFAULT_LIMITS) -> TensorSource:
    """A :class:`TensorSource` for the file ``inventory`` was read from (``path`` may be the folder the
    Inventory's file was found in: the Inventory's own path is read then). Close it (or use ``with``)."""
    p = os.fspath(path)
    return TensorSource(inventory.path if os.path.isdir(p) else p, inventory, limits)


class TensorSource:
    """Reads tensors' bytes out of one checkpoint; ``check``/``nbytes`` are cheap, ``tensor_chunks`` reads."""

    def __init__(self, path: str, inventory: Inventory, limits: Limits = DEFAULT_LIMITS, base: int = 0,
                 span: int | None = None) -> None:
        self.path = path
        self.inventory = inventory
        self.limits = limits
        self.window = DEFAULT_WINDOW
        """The largest single read a strided gather makes (bytes); tests make it small."""
        self._opened = Opened(path, inventory, limits, base, span)
        self._dcp_items: dict[tuple[Any, ...], list[Item]] | None = None
        self._data: dict[str, Data] = {}
        self._shards: dict[str, TensorSource] = {}
        self._inline: dict[str, tuple[str, int, int]] = {}
        self._inline_args: list[tuple[int, int, str]] | None = None
        self._verdicts: dict[int, tuple[TensorRecord, TensorRecord | TensorBytesError]] = {}

    # -- public ------------------------------------------------------------------------------------

    def check(self, rec: TensorRecord) -> None:
        """Raise :class:`UnsupportedTensor` when ``rec`` cannot be written as a safetensors tensor, without
        reading tensor bytes (a raw pickle's storages are located, a shard's index read; a missing or short
        record is found by :meth:`tensor_chunks`). The answer is kept per record: asking again is free."""
        self._checked(rec)

    def _checked(self, rec: TensorRecord) -> TensorRecord:
        """``resolve(rec)`` once :meth:`check` passed, remembered by the record's identity (the record itself
        is kept with the answer, so an id is never reused while it is remembered)."""
        seen = self._verdicts.get(id(rec))
        if seen is None or seen[0] is not rec:
            try:
                seen = (rec, self._check(rec))
            except TensorBytesError as e:
                seen = (rec, e)
            self._verdicts[id(rec)] = seen
        if isinstance(seen[1], TensorBytesError):
            raise seen[1]
        return seen[1]

    def _check(self, rec: TensorRecord) -> TensorRecord:
        """The checks :meth:`check` documents; returns ``resolve(rec)``."""
        key = _name(rec)
        if rec.layout != "strided":
            raise UnsupportedTensor(key, f"{rec.layout} layout (safetensors holds dense tensors only)")
        rec = self.resolve(rec)
        if safetensors_code(rec.dtype) is None:
            raise UnsupportedTensor(key, f"dtype {rec.dtype} has no safetensors equivalent")
        if rec.device == "meta":
            raise UnsupportedTensor(key, "a meta tensor has no data")
        inner = self._delegate(rec)
        if inner is not None:
            sub, sub_rec = inner
            _rekeyed(key, lambda: sub._checked(sub_rec))
            return rec
        if rec.rebuild == "_rebuild_wrapper_subclass":
            raise UnsupportedTensor(key, "a tensor subclass with no storage of its own (a DTensor is one rank's shard: "
                                    "save full_tensor() or a full state_dict, or convert the DCP checkpoint)")
        if rec.storage_key is None or rec.stride is None:
            raise UnsupportedTensor(key, f"its storage is not in the file's records ({rec.rebuild or 'unknown'})")
        if rec.storage_offset < 0 or any(s < 0 for s in rec.stride) or any(n < 0 for n in rec.shape) \
                or len(rec.stride) != len(rec.shape):
            raise UnsupportedTensor(key, "negative or mismatched sizes, strides or offset")
        size = itemsize(rec.dtype) or 1
        touched = span_elements(coalesce(rec.shape, rec.stride)) * size if rec.numel else 0
        if rec.numel * size > max(_EXPANDED_BYTES, 64 * touched):
            raise UnsupportedTensor(key, f"an expanded view: its copy takes {rec.numel * size} bytes, from "
                                    f"{touched} bytes of storage")
        st = self._opened.storages.get(rec.storage_key)
        if rec.storage_key in self._inline:
            return rec
        if self.inventory.format == "torch-export" and any(
                f"({rec.storage_key})" in n and "torch.save pickle" in n for n in self.inventory.notes):
            raise UnsupportedTensor(key, "torch.export keeps it as a torch.save pickle (use_pickle), which only "
                                    "unpickling rebuilds")
        if st is None or (st.entry is None and self.inventory.format != "torch-tar"):
            raise UnsupportedTensor(key, f"storage {rec.storage_key!r} has no byte location ckptlint can read "
                                    "(a storage only running the file would build)")
        return rec

    def safetensors_dtype(self, rec: TensorRecord) -> str:
        """The safetensors dtype code of ``rec`` (``F32``, ``BF16`` …); UnsupportedTensor when there is none."""
        rec = self.resolve(rec)
        code = safetensors_code(rec.dtype)
        if code is None:
            raise UnsupportedTensor(_name(rec), f"dtype {rec.dtype} has no safetensors equivalent")
        return code

    def nbytes(self, rec: TensorRecord) -> int:
        """Bytes of the tensor written contiguously (numel times the element size)."""
        rec = self.resolve(rec)
        size = itemsize(rec.dtype)
        if size is None:
            raise UnsupportedTensor(_name(rec), f"unknown dtype {rec.dtype}")
        return rec.numel * size

    def tensor_chunks(self, rec: TensorRecord, chunk_bytes: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        """The tensor's bytes as ``torch.load(...).contiguous()`` holds them, little-endian, C order, in pieces
        of at most ``chunk_bytes``. Raises UnsupportedTensor / TensorDataError (before yielding anything
        when the view does not fit its storage)."""
        yield from self._chunks(self._checked(rec), chunk_bytes)

    def view_chunks(self, rec: TensorRecord, chunk_bytes: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        """:meth:`tensor_chunks` for a record made on the fly (a slice of a checked one): checked again, not
        remembered (a DCP tensor in many chunks is assembled from many such slices)."""
        yield from self._chunks(self._check(rec), chunk_bytes)

    def _chunks(self, rec: TensorRecord, chunk_bytes: int) -> Iterator[bytes]:
        inner = self._delegate(rec)
        if inner is not None:
            sub, sub_rec = inner
            pieces = _rekeyed(rec.key, lambda: sub.tensor_chunks(sub_rec, chunk_bytes))
            while True:
                piece = _rekeyed(rec.key, lambda: next(pieces, None))
                if piece is None:
                    return
                yield piece
        assert rec.storage_key is not None and rec.stride is not None
        data = self._located(rec)
        size = self.nbytes(rec) // max(rec.numel, 1) if rec.numel else itemsize(rec.dtype) or 1
        if rec.numel == 0:
            return
        end = (rec.storage_offset + span_elements(list(zip(rec.shape, rec.stride, strict=True)))) * size
        if end > data.size:
            raise TensorDataError(_name(rec), f"its view ends at byte {end} of a storage of {data.size} bytes")
        if data.swap > 1 and (size % data.swap or (rec.storage_offset * size) % data.swap):
            raise UnsupportedTensor(_name(rec), f"a {rec.dtype} view of a big-endian storage of {data.swap}-byte "
                                    "elements that does not line up with them")
        try:
            for piece in strided_chunks(data.read, rec.shape, rec.stride, rec.storage_offset, size,
                                        chunk_bytes, self.window):
                yield byteswapped(piece, data.swap) if data.swap > 1 else piece
        except (FormatError, OSError, *_CONTENT_ERRORS) as e:
            raise TensorDataError(_name(rec), str(e)) from None

    def file_span(self, rec: TensorRecord) -> FileSpan | None:
        """Where a contiguous, unswapped tensor's bytes lie as-is in a file, for a zero-copy writer; None
        otherwise (read it with :meth:`tensor_chunks`)."""
        rec = self._checked(rec)
        inner = self._delegate(rec)
        if inner is not None:
            sub, sub_rec = inner
            return _rekeyed(rec.key, lambda: sub.file_span(sub_rec))
        assert rec.storage_key is not None and rec.stride is not None
        size = itemsize(rec.dtype) or 1
        merged = coalesce(rec.shape, rec.stride)
        if rec.numel == 0 or (merged and (len(merged) > 1 or merged[0][1] != 1)):
            return None
        data = self._located(rec)
        length = rec.numel * size
        if not isinstance(data, FileData) or data.path is None or data.swap > 1 \
                or (rec.storage_offset * size) + length > data.size:
            return None
        return FileSpan(data.path, data.start + rec.storage_offset * size, length)

    def resolve(self, rec: TensorRecord) -> TensorRecord:
        """``rec`` with the dtype ``torch.load`` gives it: a raw pickle's tensor's, whose storage is a nested
        ``torch.save`` (``inline:`` keys; the Inventory records its dtype as unknown), and a storage-typed
        rebuild's whose storage an earlier persistent id named with another dtype (the first one wins)."""
        key = rec.storage_key
        if key is None or self.inventory.format == "sharded-index":
            return rec
        if not key.startswith("inline:"):
            st = self._opened.storages.get(key)
            if st is not None and rec.rebuild in _TYPED_BY_STORAGE and st.dtype != rec.dtype and st.dtype in ITEMSIZE:
                # torch.load caches a storage at its first persistent id (its dtype); a later id naming the same
                # key with another dtype gets that storage, and _rebuild_tensor_v2's tensor takes its dtype
                return replace(rec, dtype=st.dtype)
            return rec
        if key not in self._inline:
            from .inline import arguments, inline_storage
            try:
                if self._inline_args is None:
                    self._inline_args = arguments(self.path)
                dtype, held, start, nbytes = inline_storage(self.path, key, self.limits, self._inline_args)
            except (FormatError, OSError, *_CONTENT_ERRORS) as e:
                raise TensorDataError(_name(rec), f"its pickled storage: {e}") from None
            if held is not None:
                self._opened.files.append(held)
            self._inline[key] = (dtype, start, nbytes)
            self._data[key] = FileData(held or self._opened.file(), None if held else self.path, start, nbytes, 1)
        dtype = self._inline[key][0]
        return rec if rec.dtype != "unknown" else replace(rec, dtype=dtype)

    def close(self) -> None:
        """Close every file opened for reading (shards' too); a closed source opens them again if asked."""
        for sub in self._shards.values():
            sub.close()
        self._opened.close()

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- locating storages ------------------------------------------------------------------------

    def _located(self, rec: TensorRecord) -> Data:
        key = rec.storage_key
        assert key is not None
        if key not in self._data:
            try:
                self._data[key] = locate(self._opened, key)
            except (FormatError, OSError, *_CONTENT_ERRORS) as e:
                raise TensorDataError(_name(rec), f"storage {key!r}: {e}") from None
        return self._data[key]

    def _delegate(self, rec: TensorRecord) -> tuple[TensorSource, TensorRecord] | None:
        """Where another source holds the tensor: a shard index's shard (the storage key inside it), a DCP
        folder's nested torch.save (its one tensor); None for a tensor of this file."""
        fmt = self.inventory.format
        if fmt not in ("sharded-index", "dcp") or (fmt == "sharded-index" and rec.storage_key is None):
            return None
        try:
            if fmt == "dcp":
                return self._dcp(rec)
            assert rec.storage_key is not None
            sub, key = self._shard(rec.storage_key)
            return sub, replace(rec, storage_key=key)
        except (FormatError, OSError, *_CONTENT_ERRORS) as e:
            raise TensorDataError(_name(rec), str(e)) from None

    def _dcp(self, rec: TensorRecord) -> tuple[Any, TensorRecord]:
        """A DCP tensor: the torch.save nested in its ``.distcp`` file when saved whole, else the chunks
        (from several ranks) assembled in C order (:class:`.dcpitems.Chunked`)."""
        from .dcpitems import Chunked, items_by_path, tiles

        if self._dcp_items is None:
            self._dcp_items = items_by_path(self.path, self.limits)
        items = self._dcp_items.get(rec.path) or []
        if not items:
            raise FormatError(".metadata names no stored item for it")
        parts = [(item.chunk_offset, *self._dcp_item(rec, item)) for item in items]
        for _, sub, inner in parts:
            try:
                sub._checked(inner)
            except TensorBytesError as e:
                raise type(e)(_name(rec), e.reason) from None
        if len(parts) == 1 and not any(parts[0][0]) and parts[0][2].shape == rec.shape:
            return parts[0][1], parts[0][2]
        problem = tiles(rec.shape, [(off, inner.shape) for off, _, inner in parts])
        if problem is not None:
            raise FormatError(f"its {len(parts)} DCP chunks {problem}")
        return Chunked(parts, rec.shape), rec

    def _dcp_item(self, rec: TensorRecord, item: Item) -> tuple[TensorSource, TensorRecord]:
        """The source of one DCP item (a nested torch.save) and its one tensor, checked against ``.metadata``."""
        from .dcpitems import nested_inventory

        if item.transformed:
            raise UnsupportedTensor(_name(rec), "DCP stored it through transforms (compression …)")
        if os.path.isabs(item.relative_path) or ".." in item.relative_path.replace("\\", "/").split("/"):
            raise FormatError(f"{item.relative_path} lies outside the checkpoint folder")
        label = f"dcp:{item.relative_path}@{item.offset}"
        sub = self._shards.get(label)
        if sub is None:
            path = os.path.join(self.path, item.relative_path)
            inv = nested_inventory(path, item, self.limits)
            sub = self._shards[label] = TensorSource(path, inv, self.limits, item.offset, item.length)
        inner = sub.inventory.tensors[0]
        if inner.dtype != rec.dtype or len(inner.shape) != len(rec.shape):
            raise FormatError(f"{item.relative_path} holds a {inner.dtype} {list(inner.shape)} tensor where "
                              f".metadata says {rec.dtype} {list(rec.shape)}")
        return sub, inner


    def _shard(self, storage_key: str) -> tuple[TensorSource, str]:
        """The source of the shard a sharded Inventory's ``<shard>:<key>`` storage key names, and ``key``."""
        from ..formats import read_inventory

        shards: Any = self.inventory.facts.extra.get("shards") or {}
        for shard in sorted(shards, key=len, reverse=True):
            if not storage_key.startswith(f"{shard}:"):
                continue
            sub = self._shards.get(shard)
            if sub is None:
                path = os.path.join(os.path.dirname(os.path.abspath(self.path)), shard)
                try:
                    inv = read_inventory(path, self.limits)
                except CheckpointError as e:
                    raise FormatError(f"shard {shard}: {e.reason}") from None
                sub = self._shards[shard] = TensorSource(path, inv, self.limits)
            return sub, storage_key[len(shard) + 1:]
        raise FormatError(f"storage {storage_key!r} names no shard of the index")


def _rekeyed(key: str, call: Callable[[], _T]) -> _T:
    """``call()``, with a TensorBytesError from another source (a shard, a nested torch.save) re-raised under
    this source's key for the tensor."""
    try:
        return call()
    except TensorBytesError as e:
        raise type(e)(key, e.reason) from None


def _name(rec: TensorRecord) -> str:
    """The state_dict key (the last key on the tensor's path)."""
    return rec.key


__all__ = ["DEFAULT_CHUNK", "FileSpan", "TensorBytesError", "TensorDataError", "TensorSource", "UnsupportedTensor",
           "open_source"]
