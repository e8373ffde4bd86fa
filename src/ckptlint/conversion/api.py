"""``ckptlint.convert()``: read the checkpoint statically, decide the plan, copy each tensor's bytes to DEST.

Nothing from the file runs or is imported: the Inventory comes from ckptlint's static reader, the safety
verdict from safety/ (dangerous globals refuse the file unless ``force``), the keys from compat/ (the
state_dict ``check`` finds; with ``apply_fix``, its verified fix), and the bytes from :mod:`.source`, in
bounded chunks (or copied file to file by the kernel where a tensor lies as-is in the source).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from ..errors import UsageError
from ..inventory import Inventory, TensorRecord
from ..limits import DEFAULT_LIMITS, Limits
from .result import ConvertError, ConvertResult, Refused
from .source import TensorBytesError, UnsupportedTensor, open_source

DIGEST_FIELD = "ckptlint_source_sha256"
_HASH_CHUNK = 8 << 20
UNCONVERTIBLE: dict[str, str] = {}
"""Formats ``inspect`` reads whose tensors ``convert`` cannot write, and why (none at present; docs/convert.md)."""


def convert(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, key: str | None = None,
            model: Any = None, model_kwargs: Any = None, snapshot: str | None = None, apply_fix: bool = False,
            force: bool = False, skip_unsupported: bool = False, drop_tied: bool = False,
            max_shard_size: int | str | None = None, overwrite: bool = False,
            limits: Limits = DEFAULT_LIMITS) -> ConvertResult:
    """Write ``src``'s state_dict to the safetensors file ``dest`` (docs/convert.md); nothing in ``src`` runs.

    ``key``: where the state_dict sits (``"state_dict"``, ``"ema/model"``; default: as ``check`` finds it).
    ``model`` (a ``package.module:callable`` spec or an ``nn.Module``) / ``snapshot``: a target, reported on;
    with ``apply_fix`` its verified fix renames and drops keys so ``load_state_dict`` works on the output.
    ``force``: convert a file that references dangerous globals (else :class:`Refused`). ``skip_unsupported``:
    leave out tensors safetensors cannot hold (else ConvertError naming them). ``drop_tied``: write tied keys
    once (``safetensors.torch.save_model``'s convention). ``max_shard_size`` (bytes or ``"5GB"``): a sharded
    set with its index. ``overwrite``: replace existing output files (else OutputError).
    Raises CheckpointError for an unreadable ``src``; on any error nothing is left at ``dest``."""
    from ..compat.unwrap import parse_key
    from .plan import make_plan
    from .writer import OutTensor, parse_size, write_set

    src, dest = os.fspath(src), os.fspath(dest)
    if apply_fix and model is None and snapshot is None:
        raise UsageError("apply_fix needs a target: model or snapshot")
    size = parse_size(max_shard_size) if isinstance(max_shard_size, str) else max_shard_size
    if size is not None and size < 1:
        raise UsageError("max_shard_size must be at least 1 byte")
    inv = _read(src, limits)
    _same_file(src, dest, inv)
    if inv.format in UNCONVERTIBLE:
        raise ConvertError(f"{src}: {UNCONVERTIBLE[inv.format]}")
    dangerous = dangerous_globals(inv)
    if dangerous and not force:
        raise Refused(f"{src}: refused: it references dangerous globals ({', '.join(dangerous[:6])}"
                      f"{', …' if len(dangerous) > 6 else ''}): the file is hostile; nothing in it was run. "
                      "--force converts its tensors anyway (still without running anything)", tuple(dangerous))
    _loads(src, inv)
    target = _target(model, model_kwargs, snapshot, key)
    with open_source(src, inv, limits) as source:
        def supported(rec: TensorRecord) -> str | None:
            try:
                source.check(rec)
                return None
            except UnsupportedTensor as e:
                return e.reason

        plan = make_plan(inv, supported, key=parse_key(key) if key else None, target=target, apply_fix=apply_fix,
                         skip_unsupported=skip_unsupported, drop_tied=drop_tied, force=force)
        opened: dict[str, BinaryIO] = {}  # source files a kernel copy reads, each opened once
        out = [OutTensor(name, source.safetensors_dtype(rec), _shape(rec), source.nbytes(rec),
                         _copier(source, name, rec, opened),
                         None if rec.storage_key is None else (rec.stream, rec.storage_key), rec.storage_bytes)
               for name, rec in plan.entries]
        metadata = _metadata(src, inv, plan)
        hasher = _Hasher(_hashed_file(src, inv))
        try:
            written = write_set(dest, out, metadata, max_shard_size=size, overwrite=overwrite,
                                digest=hasher.result, digest_field=DIGEST_FIELD)
        finally:
            hasher.stop()
            for f in opened.values():
                f.close()
    metadata[DIGEST_FIELD] = hasher.result()
    return ConvertResult(
        source=src, dest=dest, files=written.files, index=written.index, sha256=metadata[DIGEST_FIELD],
        state_dict_path=tuple(plan.state_dict.path), state_dict_found_by=plan.state_dict.how,
        tensors=tuple(name for name, _ in plan.entries), nbytes=sum(t.nbytes for t in out),
        left_out=tuple(plan.left_out), unsupported=tuple(plan.unsupported), tied=dict(plan.tied),
        tied_dropped=plan.tied_dropped, mapping=dict(plan.mapping), dropped=tuple(plan.dropped),
        transposed=tuple(plan.transposed), target=plan.target, strict=plan.strict,
        random_init=tuple(plan.random_init), diagnosis=tuple(plan.diagnosis), dangerous=tuple(dangerous),
        hooks_not_run=tuple(plan.hooks), stringified=tuple(plan.stringified),
        metadata=dict(metadata))


def _read(src: str, limits: Limits) -> Inventory:
    """``ckptlint.inspect``: FIFOs and devices refused unopened, then the static reader."""
    from ..errors import CheckpointError
    from ..formats import read_inventory
    from ..sources import special_file

    special = special_file(src)
    if special is not None:
        raise CheckpointError(src, special, "unreadable")
    return read_inventory(src, limits)


def _same_file(src: str, dest: str, inv: Inventory) -> None:
    try:
        same = os.path.exists(dest) and os.path.samefile(src, dest)
    except OSError:
        same = False
    if same:
        raise ConvertError(f"{dest}: is the source file itself: write the conversion somewhere else")


def _loads(src: str, inv: Inventory) -> None:
    """A stream torch.load reads that stopped (torch raises there, or a reading bound was hit): what was read
    is not the checkpoint, so nothing is written."""

    loaded = set(inv.facts.loaded_streams)
    if not loaded and inv.format == "torchscript":  # torch.jit.load unpickles these; traced_inputs.pkl its own way
        loaded = {s for s in inv.facts.streams if s.endswith(("/data.pkl", "/constants.pkl"))}
    stopped = {stop.stream for stop in inv.stops}
    for stop in inv.stops:
        if stop.stream in loaded or not loaded:
            why = f"limit {stop.limit}: " if stop.limit else ""
            wo = f"{stop.stream}#weights_only"
            if not stop.limit and wo in inv.facts.streams and wo not in stopped:
                raise ConvertError(f"{src}: the two torch.load readings disagree: pickle stops in {stop.stream} at "
                                   f"{stop.offset} ({stop.reason}), so weights_only=False fails, while "
                                   "weights_only=True's own unpickler reads past it; convert writes neither")
            raise ConvertError(f"{src}: torch.load fails on this file ({stop.stream}@{stop.offset}: {why}"
                               f"{stop.reason}): there is no checkpoint to convert")


def dangerous_globals(inv: Inventory) -> list[str]:
    """The globals ``check`` reports as CK101 (safety/: can run code or touch the system), in file order."""
    from ..safety.allowlist import allowed_globals
    from ..safety.weights_only import categorize

    cats = categorize(inv, allowed_globals())
    return list(dict.fromkeys(g.qualname for g in inv.globals if cats.get(g.qualname) == "dangerous"))


def _target(model: Any, model_kwargs: Any, snapshot: str | None, key: str | None) -> Any:
    """The target ``check --model/--snapshot`` would use (plugins' resolvers first), or None."""
    if model is None and snapshot is None:
        return None
    from ..compat.unwrap import parse_key
    from ..plugin.manager import resolve_spec
    from ..targets.resolve import resolve_target
    from ..targets.spec import parse_kwargs

    resolved = resolve_spec(model, parse_kwargs(model_kwargs)) if isinstance(model, str) else None
    return resolve_target(resolved=resolved, model=None if isinstance(model, str) else model, snapshot=snapshot,
                          key=parse_key(key) if key else None)


def _shape(rec: TensorRecord) -> tuple[int, ...]:
    return tuple(int(n) for n in rec.shape)


def _metadata(src: str, inv: Inventory, plan: Any) -> dict[str, str]:
    """``__metadata__``: safetensors' ``format``, where the bytes came from, every key decision (docs/convert.md)."""
    import json

    from ..version import __version__

    md: dict[str, str] = {"format": "pt", "ckptlint_version": __version__,
                          "ckptlint_source": _text(_source_name(src, inv)),
                          DIGEST_FIELD: "0" * 64}
    if plan.state_dict.path:
        md["ckptlint_state_dict"] = "/".join(str(p) for p in plan.state_dict.path)
    if plan.mapping:
        md["ckptlint_key_mapping"] = json.dumps(plan.mapping, ensure_ascii=False)
    if plan.dropped:
        md["ckptlint_dropped"] = json.dumps(plan.dropped, ensure_ascii=False)
    if plan.transposed:
        md["ckptlint_transposed"] = json.dumps(plan.transposed, ensure_ascii=False)
    for alias, kept in plan.tied.items():  # safetensors.torch.save_model: {removed name: kept name}
        md.setdefault(alias, kept)
    return md


def _text(name: str) -> str:
    """A file name as UTF-8 text: undecodable bytes (``surrogateescape``) shown escaped, ``\\udcNN``."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _source_name(src: str, inv: Inventory) -> str:
    """The hashed file's name: its base name, or ``FOLDER/file`` when SRC is a folder."""
    hashed = _hashed_file(src, inv)
    if not os.path.isdir(src):
        return os.path.basename(hashed)
    return os.path.relpath(hashed, os.path.dirname(os.path.abspath(src))).replace(os.sep, "/")


def _hashed_file(src: str, inv: Inventory) -> str:
    """The file the sha256 is of: SRC itself; a folder given as SRC: the checkpoint file read in it (a
    ``save_pretrained`` folder's model file or index), a DCP folder's ``.metadata``."""
    path = inv.path if os.path.isdir(src) else src
    return os.path.join(path, ".metadata") if os.path.isdir(path) else path


class _Hasher:
    """The source's sha256, computed by a thread while the tensors are copied (the two reads overlap, and
    hashlib releases the GIL), in bounded chunks; :meth:`stop` ends it early when the conversion fails."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._digest: str | None = None
        self._error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ckptlint-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        h = hashlib.sha256()
        buf = bytearray(_HASH_CHUNK)
        view = memoryview(buf)
        try:
            with open(self._path, "rb") as f:
                while not self._stop.is_set():
                    n = f.readinto(buf)
                    if not n:
                        self._digest = h.hexdigest()
                        return
                    h.update(view[:n])
        except OSError as e:
            self._error = e

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            from ..errors import CheckpointError

            raise CheckpointError(self._path, f"cannot read it for its sha256: {self._error.strerror or self._error}")
        assert self._digest is not None
        return self._digest

    def stop(self) -> None:
        if self._digest is None:
            self._stop.set()
        self._thread.join()


def _copier(source: Any, name: str, rec: TensorRecord, opened: dict[str, BinaryIO]) -> Callable[[BinaryIO], int]:
    """How ``rec``'s bytes get into the output: a kernel copy where they lie as-is in the source, else the
    source's bounded chunks (strided views gathered, big-endian swapped). Errors name the written key."""

    def write(out: BinaryIO) -> int:
        try:
            span = source.file_span(rec)
            if span is not None:
                if span.path not in opened:
                    opened[span.path] = open(span.path, "rb")  # noqa: SIM115 - closed when the conversion ends
                return _copy_span(opened[span.path], span.offset, span.length, out)
            n = 0
            for piece in source.tensor_chunks(rec):
                out.write(piece)
                n += len(piece)
            return n
        except TensorBytesError as e:
            raise ConvertError(f"tensor {name!r}: {e.reason}; nothing was written") from None

    return write


def _copy_span(f: BinaryIO, offset: int, length: int, out: BinaryIO) -> int:
    """``length`` bytes at ``offset`` of ``f`` appended to ``out``: ``os.copy_file_range`` (no copy through
    Python) where the system has it, else chunked reads."""
    out.flush()
    pos = out.tell()
    done = 0
    copy = getattr(os, "copy_file_range", None)
    if copy is not None:
        try:
            while done < length:
                n = copy(f.fileno(), out.fileno(), min(length - done, 1 << 30), offset + done, pos + done)
                if n <= 0:
                    break
                done += n
        except OSError:
            pass  # e.g. EXDEV/ENOSYS/EINVAL on some file systems: the plain copy below
    out.seek(pos + done)
    f.seek(offset + done)
    while done < length:
        piece = f.read(min(_HASH_CHUNK, length - done))
        if not piece:
            break
        out.write(piece)
        done += len(piece)
    return done
