"""Readers that turn a checkpoint file into an Inventory without executing it."""

from __future__ import annotations

import gc
import os
import struct

from ..errors import CheckpointError, FormatError, LimitExceeded
from ..inventory import FormatFacts, Inventory, StreamStop
from ..limits import DEFAULT_LIMITS, Limits
from .common import CountingFile, assemblers_of
from .sniff import NOT_CHECKPOINT_REASONS, classify_text, is_npz, not_checkpoint_archive, sniff

__all__ = ["NOT_CHECKPOINT_REASONS", "read_inventory", "sniff_kind"]


def sniff_kind(path: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """What the file looks like (``python-pth``, ``zip``, ``pickle`` …), reading only its head."""
    try:
        f = CountingFile(path, limits)
    except OSError:
        return None
    try:
        kind = sniff(f, path, limits)
    except (OSError, *_DECODE_ERRORS):
        return None
    finally:
        f.close()
    if kind != "maybe-text":
        return kind
    try:  # a protocol-0 pickle is text too: only what fails to parse as one is a site .pth file
        return read_inventory(path, limits).format
    except CheckpointError as e:
        return e.format

# Content errors a hostile file can provoke in the standard library while we
# decode it; each becomes a one-line reason, never a traceback.
_DECODE_ERRORS = (FormatError, ValueError, OverflowError, struct.error, UnicodeError,
                  RecursionError, MemoryError, EOFError)


def read_inventory(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Read ``path`` statically; raises CheckpointError with a one-line reason."""
    path = os.fspath(path)
    if os.path.isdir(path):  # a DCP checkpoint, a save_pretrained / accelerate folder (formats.directory)
        from .directory import read_directory

        return read_directory(path, limits, read_inventory)
    try:
        f = CountingFile(path, limits)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file", "missing") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot open: {e.strerror or e}", "unreadable") from None
    kind = "unknown"
    gc_was_on = gc.isenabled()
    gc.disable()  # readers build millions of small objects; cyclic GC passes over them cost more than the read
    try:
        kind = sniff(f, path, limits)
        return _settle(_read(f, path, kind, limits), path, kind)
    except CheckpointError:
        raise
    except _DECODE_ERRORS as e:
        reason = str(e) if isinstance(e, FormatError) else f"malformed content ({type(e).__name__}: {e})"
        reason = reason.splitlines()[0] if reason else type(e).__name__
        partial = _partial(f, path, kind, reason, e)
        if partial is not None:
            return partial
        if kind == "maybe-text" and not isinstance(e, LimitExceeded):
            text_kind = classify_text(f, path, limits)
            raise CheckpointError(path, *_text_reason(path, text_kind, f, limits)) from None
        archive = not_checkpoint_archive(f, kind, reason, limits) if kind in ("zip", "torch-tar") \
            and not isinstance(e, LimitExceeded) else None
        if archive is not None:  # a zip/tar that holds no checkpoint: not a broken one
            raise CheckpointError(path, archive, "archive") from None
        raise CheckpointError(path, reason, kind,
                              limit=e.field if isinstance(e, LimitExceeded) else None) from None
    except OSError as e:
        raise CheckpointError(path, f"read error: {e.strerror or e}", kind) from None
    finally:
        f.close()
        f.budget.readers.clear()  # assemblers <-> budget: a cycle that would keep every record until a GC pass
        if gc_was_on:
            if not gc.get_freeze_count():  # never thaw what the host process froze on purpose
                # the fresh records go straight to the oldest generation: the next young collection
                # would otherwise walk every one of them (tens of thousands) to find no garbage
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _read(f: CountingFile, path: str, kind: str, limits: Limits) -> Inventory:
    """The reader of ``kind``, imported here: a check loads only the readers its files need (startup)."""
    if kind in NOT_CHECKPOINT_REASONS:
        raise CheckpointError(path, NOT_CHECKPOINT_REASONS[kind], kind)
    if kind == "npy":  # an object array's pickle, else kind numpy (not a checkpoint)
        from .npy import read_npy

        return read_npy(f, path, limits)
    if kind == "zip":
        from .pt2_probe import open_pt2
        from .torchzip import read_torch_zip

        if is_npz(f):
            from .npy import read_npz

            npz = read_npz(f, path, limits)
            if npz is not None:
                return npz
        pt2 = open_pt2(f, limits)  # a torch.export archive (formats.pt2)
        if pt2 is None:
            return read_torch_zip(f, path, limits)
        from .pt2 import read_pt2

        return read_pt2(f, path, *pt2, limits)
    if kind == "torch-preview":
        raise CheckpointError(path, "PyTorch preview archive (PYTORCH1), which torch no longer reads", kind)
    if kind == "torch-tar":
        from .tar_torch import read_tar

        return read_tar(f, path, limits)
    if kind == "safetensors":
        from .safetensors import read_safetensors

        return read_safetensors(f, path, limits)
    if kind == "sharded-index":
        from .sharded import parse_index, read_sharded

        index = parse_index(f.pread(0, f.size))
        assert index is not None
        return read_sharded(f, path, index, read_inventory, limits)
    # "pickle" or "maybe-text": a protocol-0 pickle is text too, so the pickle reader decides
    from .legacy import read_pickle_file

    return read_pickle_file(f, path, limits)


def _text_reason(path: str, text_kind: str, f: CountingFile, limits: Limits) -> tuple[str, str]:
    """Text is not a checkpoint, except a file named ``*.index.json`` that claims to be a shard index
    (it has a ``weight_map``) or is not JSON at all: a broken shard index is an error, not a note."""
    if text_kind != "text" or not os.path.basename(path).lower().endswith(".index.json"):
        return NOT_CHECKPOINT_REASONS[text_kind], text_kind
    import json

    raw = f.pread(0, min(f.size, limits.max_header_bytes))
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return f"named *.index.json but not a JSON shard index ({type(e).__name__}: {e})", "sharded-index"
    if isinstance(obj, dict) and "weight_map" in obj:
        return "shard index whose weight_map is not an object of tensor names to files", "sharded-index"
    return NOT_CHECKPOINT_REASONS[text_kind], text_kind


def _settle(inv: Inventory, path: str, kind: str) -> Inventory:
    """A stop in a stream torch loads, with no global before it, is an unreadable file (nothing ran
    that matters); with globals before it, the partial Inventory is the report (CPython ran them).
    No loaded stream (a zip torch refuses) means no stop torch reaches: the file is a report."""
    loaded = set(inv.facts.loaded_streams)
    stop = next((s for s in inv.stops if s.stream in loaded), None)
    if stop is None or any(g.stream in loaded or g.stream == "pickle#0" for g in inv.globals):
        return inv  # pickle#0 is also what pickle.load runs (a tar's first header): never thrown away
    if f"{stop.stream}#weights_only" in inv.facts.streams:
        return inv  # past a PROTO CPython refuses, torch's weights_only unpickler reads on: safety/ judges it
    if any(a.startswith(f"{stop.stream} ") and "uninitialised memory" in a for a in inv.anomalies):
        return inv  # torch reads memory nothing wrote: what it finds there is unknowable, the report says so
    where = f" (byte {stop.offset} of {stop.stream})" if stop.reason.find(str(stop.offset)) < 0 else ""
    if kind == "maybe-text" and stop.limit is None:
        ran = next((p.opcodes for p in inv.pickles if p.stream == stop.stream), 0)
        if ran < 3 or ("truncated" not in stop.reason and "without STOP" not in stop.reason):
            raise _NotPickle(stop.reason)  # classified as text by read_inventory
        kind = "pickle"  # a protocol-0 pickle cut short is still a pickle
    raise CheckpointError(path, stop.reason + where, inv.format if kind != "maybe-text" else "pickle",
                          limit=stop.limit)


class _NotPickle(FormatError):
    """Text that did not parse as a protocol-0 pickle: classified as text by read_inventory."""


_PARTIAL_FORMAT = {"zip": "torch-zip", "maybe-text": "pickle", "npy": "pickle"}


def _partial(f: CountingFile, path: str, kind: str, reason: str, err: Exception) -> Inventory | None:
    """When a reader gives up after its pickle streams named globals, report them (CPython ran them)
    together with the stop, instead of throwing them away."""
    asms = assemblers_of(f.budget)
    if not any(a.globals for a in asms):
        return None
    main = asms[0]
    for other in asms[1:]:
        main.absorb(other)
        main.wrapper_streams |= other.wrapper_streams
    limit = err.field if isinstance(err, LimitExceeded) else None
    if not any(s.reason == reason for s in main.stops):
        main.stops.append(StreamStop(main.streams[-1] if main.streams else "", -1, reason, limit))
    facts = FormatFacts(
        format=_PARTIAL_FORMAT.get(kind, kind), file_size=f.size, bytes_read=f.bytes_read,
        pickle_protocol=main.protocol, streams=tuple(main.streams),
        # a '#weights_only' reading (past a PROTO CPython refuses) is never what pickle.load/torch.load run
        loaded_streams=tuple(s for s in main.streams if not s.endswith("#weights_only")),
        opcodes=tuple(sorted(main.opcodes)),
    )
    return main.inventory(facts, None)
