"""What is installed, read from the metadata folders on ``sys.path`` without ``importlib.metadata``.

Importing ``importlib.metadata`` (email, zipfile, csv, pathlib, ...) costs more than a whole small
check, and a check asks only two questions: may a ``ckptlint`` plugin be installed, and which torch.
Both are answered by reading the ``*.dist-info`` / ``*.egg-info`` folders the way importlib.metadata's
path finder does (same search order, same name normalisation). Where that look cannot see everything
(a path entry that is a file, such as a zip or an egg; a meta-path finder that lists distributions of
its own), the answer comes from importlib.metadata itself.
"""

from __future__ import annotations

import os
import re
import sys

_INFO = (".dist-info", ".egg-info")


class _Opaque(Exception):
    """Something on the path this plain look cannot read like importlib.metadata does."""


def _info_folders(name: str | None = None) -> list[str]:
    """Every metadata folder on ``sys.path`` (of the distribution ``name`` only, when given), in
    importlib.metadata's order; raises :class:`_Opaque` when that order is not this look's to give."""
    from importlib.machinery import PathFinder

    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        raise _Opaque
    wanted = None if name is None else _normalize(name)
    found: list[str] = []
    for entry in sys.path:
        folder = entry or "."
        if folder.lower().endswith(".egg"):
            raise _Opaque
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            raise _Opaque from None
        except OSError:  # missing or unreadable: importlib.metadata skips it too
            continue
        for child in names:
            low = child.lower()
            if low.endswith(_INFO) and (wanted is None
                                        or _normalize(low.rpartition(".")[0].partition("-")[0]) == wanted):
                found.append(os.path.join(folder, child))
    return found


def _normalize(name: str) -> str:
    if "-" not in name and "." not in name and "__" not in name:  # nothing to fold (most names): no regex
        return name.lower()
    return re.sub(r"[-_.]+", "_", name).lower()


def declares_entry_points(group: str) -> bool:
    """Whether some installed distribution may declare entry points in ``group`` (a ``[group]``
    section in its ``entry_points.txt``); when unsure, True."""
    try:
        folders = _info_folders()
    except _Opaque:
        return True
    return any(_has_section(os.path.join(info, "entry_points.txt"), group) for info in folders)


def _has_section(path: str, group: str) -> bool:
    if not os.access(path, os.F_OK):  # most have no entry_points.txt: no open() failing with an exception
        return False
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if group.isascii() and group.encode() not in data:  # most name other groups only: no decoding, no lines
        return False
    text = data.decode("utf-8", "replace")  # what _read gives (splitlines breaks lines as newline=None does)
    return any(line.startswith("[") and line.endswith("]") and line.strip("[]").strip() == group
                                    for line in map(str.strip, text.splitlines()))


def version(name: str) -> str | None:
    """The installed version of distribution ``name`` (``importlib.metadata.version``), or None."""
    try:
        folders = _info_folders(name)
    except _Opaque:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as metadata_version

        try:
            return metadata_version(name)
        except PackageNotFoundError:
            return None
    for info in folders:  # the first one, as importlib.metadata.distribution(name) takes
        text = _read(info) if os.path.isfile(info) else (_read(os.path.join(info, "METADATA"))
                                                         or _read(os.path.join(info, "PKG-INFO")))
        return _header(text or "", "Version")
    return None


def _header(text: str, field: str) -> str | None:
    """A field of an email-style metadata header (the lines before the first empty one)."""
    prefix = field.lower() + ":"
    for line in text.splitlines():
        if not line.strip():
            break
        if line.lower().startswith(prefix):
            return line[len(prefix):].strip()
    return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None
