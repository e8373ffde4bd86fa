"""What to check: the user's inputs (paths, folders, ``-``, bytes, binary file objects) as sources.

Front ends hand their inputs here and get back one :class:`Source` per thing to check,
each once, in a stable order. Folders are walked (``.gitignore`` through git itself,
``exclude`` globs); FIFOs and devices are refused before anything opens them (opening
a FIFO for reading blocks until a writer comes); standard input, bytes and file objects
are copied to a temporary file, bounded by ``Limits.max_spool_bytes``, because the
readers need a path. docs/cli.md (Inputs) and docs/api.md describe the rules.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeAlias, cast

from .filenames import CHECKPOINT_SUFFIXES, fnmatchcase, is_checkpoint_name, repository_root, special_kind
from .limits import DEFAULT_LIMITS, Limits
from .record import record


class SupportsReadBytes(Protocol):
    """A binary file object: ``open(path, "rb")``, ``io.BytesIO``, ``sys.stdin.buffer``."""

    def read(self, size: int = ..., /) -> bytes: ...


CheckInput: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | SupportsReadBytes"
"""One input to :func:`ckptlint.check`: a path (file or folder), the checkpoint's bytes, or a binary file object."""

STDIN = "-"
"""The command-line name of standard input, and how reports name what was read from it."""

_CHUNK = 1 << 20
_MAX_DEPTH = 64
"""Nested repositories followed below a walked folder (a walk never follows symlinked folders)."""


@record
class Source:
    """One thing to check, or why it cannot be."""

    name: str
    """How reports name it: the path as given or walked, ``-``, ``<bytes>`` or ``<stream>``."""
    path: str | None
    """What the readers open (a file, a checkpoint folder, a temporary copy); None with ``error``."""
    error: str | None = None
    kind: str | None = None
    """The format kind reported with ``error`` (``unreadable``, ``directory``)."""
    spooled: bool = False
    """``path`` is a temporary copy: configuration is looked up from the working directory."""
    walked: bool = False
    """Found by a folder walk (not named): plainly not a checkpoint is then a note, not an error."""


@contextlib.contextmanager
def resolve(inputs: CheckInput | Iterable[CheckInput], *, exclude: Sequence[str] = (),
            config: str | None = None, use_config: bool = True, stdin: bool = False,
            limits: Limits = DEFAULT_LIMITS) -> Iterator[list[Source]]:
    """The sources for ``inputs``; temporary copies are removed when the block ends.

    ``exclude`` globs (relative to the working directory) and each walked folder's configured
    ``exclude`` leave out what a walk finds, never a path named in ``inputs``. With ``stdin``, the
    path ``-`` is standard input (the command line); otherwise it is a file of that name."""
    temporary: list[str] = []
    try:
        yield list(_sources(_as_list(inputs), exclude, config, use_config, stdin, limits, temporary))
    finally:
        for path in temporary:
            with contextlib.suppress(OSError):
                os.unlink(path)


def expand(paths: Iterable[str | os.PathLike[str]], *, exclude: Sequence[str] = (), config: str | None = None,
           use_config: bool = True) -> list[Source]:
    """Paths only (no ``-``, no temporary copies): folders walked, each file once, in order.

    For front ends that check each source themselves (the pytest plugin): a ``Source`` with
    ``error`` set (a FIFO, a folder without checkpoints) is one line to report; a missing
    path comes back as itself, and checking it says so."""
    return list(_sources(list(paths), exclude, config, use_config, False, DEFAULT_LIMITS, []))


def special_file(path: str) -> str | None:
    """Why ``path`` must not be opened (a FIFO, a device, a socket), or None. Never opens it."""
    what = special_kind(path)
    if what is None:
        return None
    return f"not a regular file ({what}): nothing was read; give the checkpoint file, or `-` to read standard input"


def _as_list(inputs: CheckInput | Iterable[CheckInput]) -> list[CheckInput]:
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(inputs, "read"):
        return [cast("CheckInput", inputs)]  # a reader is one input, not an iterable of lines
    return list(inputs)


def _sources(items: list[CheckInput], exclude: Sequence[str], config: str | None, use_config: bool,
             stdin: bool, limits: Limits, temporary: list[str]) -> Iterator[Source]:
    seen: set[str] = set()
    single = len(items) == 1
    for i, item in enumerate(items):
        if isinstance(item, (bytes, bytearray, memoryview)):
            yield _spool_bytes(bytes(item), "<bytes>" if single else f"<bytes #{i}>", limits, temporary)
        elif isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if stdin and path == STDIN:
                if STDIN not in seen:
                    seen.add(STDIN)
                    yield _stdin(limits, temporary)
                continue
            yield from _named(path, exclude, config, use_config, seen)
        else:
            name = getattr(item, "name", None)
            if not isinstance(name, str):
                name = "<stream>" if single else f"<stream #{i}>"
            yield _spool(item, name, limits, temporary)


def _named(path: str, exclude: Sequence[str], config: str | None, use_config: bool,
           seen: set[str]) -> Iterator[Source]:
    if os.path.isdir(path):
        found = sorted(_collect(path, _Exclude(exclude, path, config, use_config), 0), key=lambda x: x[0])
        if not found:
            yield Source(path, None, "a directory with no checkpoint files in it (names ending in "
                         f"{' '.join(CHECKPOINT_SUFFIXES)}; what .gitignore and exclude leave out is not walked)",
                         "directory")
        yield from _once((src for _, src in found), seen)
        return
    yield from _once([Source(path, path)], seen)


# -- folders -------------------------------------------------------------------------------------


class _Exclude:
    """The ``--exclude`` globs (working directory) and the walked folder's configured ``exclude``."""

    def __init__(self, flag_globs: Sequence[str], root: str, config: str | None, use_config: bool) -> None:
        self.rules: list[tuple[str, tuple[str, ...]]] = [(os.getcwd(), _globs(flag_globs))] if flag_globs else []
        if use_config:
            from .config import config_for

            cfg = config_for(root, config)
            if cfg.exclude:
                self.rules.append((cfg.base, _globs(cfg.exclude)))

    def __call__(self, path: str) -> bool:
        """A glob matches the path relative to its base (``*`` crosses ``/``) or any one part of it."""
        full = os.path.abspath(path)
        for base, globs in self.rules:
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
            if any(fnmatchcase(rel, g) or any(fnmatchcase(p, g) for p in parts) for g in globs):
                return True
        return False


def _globs(globs: Iterable[str]) -> tuple[str, ...]:
    """``old/`` means the folder ``old`` (as in .gitignore)."""
    return tuple(g.rstrip("/") or g for g in globs)


def _once(found: Iterable[Source], seen: set[str]) -> Iterator[Source]:
    """Each file once (by its real path), special files refused."""
    for src in found:
        if src.path is None:
            yield src
            continue
        key = os.path.realpath(src.path)
        if key in seen:
            continue
        seen.add(key)
        reason = special_file(src.path)
        yield Source(src.name, None, reason, "unreadable", walked=src.walked) if reason else src


def _collect(root: str, excluded: _Exclude, depth: int) -> list[tuple[str, Source]]:
    listed, errors = _listing(root, excluded)
    found = [(rel, Source(_join(root, rel), None, reason, "unreadable")) for rel, reason in errors]
    files = [r for r in listed if not excluded(_join(root, r.rstrip("/")))]
    nested = [r.rstrip("/") for r in files if r.endswith("/") or (not is_checkpoint_name(r) and _is_real_dir(root, r))]
    nested_set = set(nested)
    files = [r for r in files if not r.endswith("/") and r not in nested_set]
    covered, folders = _checkpoint_folders(root, files)
    found += [(d, Source(_join(root, d), _join(root, d), walked=True)) for d in folders]
    found += [(r, Source(_join(root, r), _join(root, r), walked=True)) for r in files
              if r not in covered and is_checkpoint_name(r)]
    if depth < _MAX_DEPTH:
        for r in nested:
            found += [(f"{r}/{rel}", src) for rel, src in _collect(_join(root, r), excluded, depth + 1)]
    return found


def _join(root: str, rel: str) -> str:
    return os.path.normpath(os.path.join(root, *rel.split("/"))) if rel else root


def _is_real_dir(root: str, rel: str) -> bool:
    path = _join(root, rel)
    return os.path.isdir(path) and not os.path.islink(path)


def _checkpoint_folders(root: str, files: list[str]) -> tuple[set[str], list[str]]:
    """Folders that are one checkpoint (DCP, save_pretrained / accelerate) and the files they cover.

    A DCP folder is read through its ``.metadata`` (its ``.distcp`` shards have no checkpoint name);
    a library folder covers its model file and the shards its index names. Every other
    checkpoint file in them (optimizer, RNG state, ...) is still checked on its own."""
    from .formats.dcp import is_dcp_dir
    from .formats.directory import MODEL_FILES

    by_dir: dict[str, set[str]] = {}
    for r in files:
        by_dir.setdefault(posixpath.dirname(r), set()).add(posixpath.basename(r))
    listed = set(files)
    covered: set[str] = set()
    folders: list[str] = []
    for d, names in by_dir.items():
        if ".metadata" in names and is_dcp_dir(_join(root, d)):
            folders.append(d)
        elif names.intersection(MODEL_FILES):
            model = _library_model_file(root, d, listed)
            if model is not None:
                folders.append(d)
                covered |= model
    return covered, folders


def _library_model_file(root: str, d: str, kept: set[str]) -> set[str] | None:
    """The files the folder reader (formats/directory.py) reads for folder ``d``, when it reads one we walk."""
    from .formats.directory import MODEL_FILES

    try:
        names = set(os.listdir(_join(root, d)))
    except OSError:
        return None
    first = next((n for n in MODEL_FILES if n in names), None)
    rel = f"{d}/{first}" if d else first
    if first is None or rel is None or rel not in kept or not _regular(_join(root, rel)):
        return None  # a FIFO under a model file's name is refused as a file, never opened by the folder reader
    out = {rel}
    if first.endswith(".index.json"):
        out |= {s for s in _shards(root, d, rel) if s in kept}
    return out


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _shards(root: str, d: str, index: str) -> set[str]:
    from .formats.sharded import parse_index

    try:
        with open(_join(root, index), "rb") as f:
            raw = f.read(DEFAULT_LIMITS.max_header_bytes + 1)
    except OSError:
        return set()
    obj = parse_index(raw) if len(raw) <= DEFAULT_LIMITS.max_header_bytes else None
    if obj is None:
        return set()
    names = {posixpath.normpath(posixpath.join(d, v)) for v in obj["weight_map"].values() if isinstance(v, str)}
    return {n for n in names if not n.startswith("../")}


def _listing(root: str, excluded: _Exclude) -> tuple[list[str], list[tuple[str, str]]]:
    """Files under ``root`` (``/``-separated, relative), and folders that could not be listed."""
    if repository_root(root) is not None:
        listed = _git_listing(root)
        if listed is not None:
            return listed
    files: list[str] = []
    errors: list[tuple[str, str]] = []

    def onerror(e: OSError) -> None:
        errors.append((os.path.relpath(str(e.filename), root).replace(os.sep, "/"),
                       f"cannot list the directory: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):  # symlinked folders are not followed
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel + "/"
        dirnames[:] = sorted(n for n in dirnames if n != ".git" and not excluded(os.path.join(dirpath, n)))
        files += [rel + n for n in filenames]
    return files, errors


_GIT_UNREADABLE = r"could not open directory '(.*)': (.*)"
"""Compiled (re's cache) when git lists a folder, not at import (startup)."""


def _git_listing(root: str) -> tuple[list[str], list[tuple[str, str]]] | None:
    """``git ls-files --cached --others --exclude-standard``: what git tracks or would add, relative to ``root``.

    None when git is missing or refuses (not a work tree after all, an unsafe owner): the caller walks."""
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    try:  # without the variables that pin another repository (a hook's environment): git finds root's own
        done = subprocess.run([git, "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              capture_output=True, timeout=300, check=False, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    names = list(dict.fromkeys(os.fsdecode(n) for n in done.stdout.split(b"\0") if n))
    errors = [(m.group(1).rstrip("/"), f"cannot list the directory: {m.group(2)}")
              for m in (re.search(_GIT_UNREADABLE, line) for line in os.fsdecode(done.stderr).splitlines()) if m]
    return [n for n in names if os.path.lexists(_join(root, n.rstrip("/")))], errors


# -- standard input, bytes and file objects ------------------------------------------------------


def _stdin(limits: Limits, temporary: list[str]) -> Source:
    stream: Any = getattr(sys.stdin, "buffer", sys.stdin)
    if stream is None:
        return Source(STDIN, None, "no standard input to read", "unreadable")
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if stream.isatty():
            return Source(STDIN, None, "standard input is a terminal: pipe the checkpoint in "
                          "(`ckptlint check - < model.pt`)", "unreadable")
    return _spool(stream, STDIN, limits, temporary)


def _temporary(temporary: list[str]) -> tuple[int, str]:
    import tempfile  # only standard input, bytes and streams are spooled (startup)

    fd, path = tempfile.mkstemp(prefix="ckptlint-")
    temporary.append(path)
    return fd, path


def _spool_bytes(data: bytes, name: str, limits: Limits, temporary: list[str]) -> Source:
    if len(data) > limits.max_spool_bytes:
        return Source(name, None, _too_big(limits), "unreadable")
    fd, path = _temporary(temporary)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Source(name, path, spooled=True)


def _spool(stream: SupportsReadBytes, name: str, limits: Limits, temporary: list[str]) -> Source:
    """Copy ``stream`` to a temporary file in chunks; never more than ``max_spool_bytes``."""
    fd, path = _temporary(temporary)
    total = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk: object = stream.read(_CHUNK)
            except (OSError, ValueError) as e:
                return Source(name, None, f"cannot read: {getattr(e, 'strerror', None) or e}", "unreadable")
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                return Source(name, None, "a text stream, not bytes: open the file in binary mode ('rb')",
                              "unreadable")
            if not chunk:
                return Source(name, path, spooled=True)
            total += len(chunk)
            if total > limits.max_spool_bytes:
                return Source(name, None, _too_big(limits), "unreadable")
            out.write(chunk)


def _too_big(limits: Limits) -> str:
    return (f"more than {limits.max_spool_bytes} bytes (limit max_spool_bytes): give the file by its path, "
            "or raise the limit")


__all__ = ["STDIN", "CheckInput", "Source", "SupportsReadBytes", "expand", "resolve", "special_file"]
