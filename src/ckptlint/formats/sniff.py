"""Decide a file's format from its content, the way torch.load does, not its extension."""

from __future__ import annotations

import os
import posixpath

from ..errors import FormatError
from ..filenames import is_checkpoint_name
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .common import CountingFile

ZIP_MAGIC = b"PK\x03\x04"

NOT_CHECKPOINT_REASONS = {
    "empty": "empty file, not a checkpoint",
    "python-pth": "a Python site-packages path configuration (.pth) file, not a checkpoint",
    "lfs-pointer": "a Git LFS pointer, not the checkpoint itself (run `git lfs pull`)",
    "text": "a text file, not a checkpoint",
    "unknown": "unrecognised content, not a checkpoint",
}


def sniff(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """One of: torch-zip (zip, decided further by its reader), torch-preview, torch-tar,
    safetensors, sharded-index, npy (numpy), pickle (legacy or raw, decided by the first pickle),
    or a not-a-checkpoint kind from NOT_CHECKPOINT_REASONS (or ``maybe-text``)."""
    if f.size == 0:
        return "empty"
    head = f.pread(0, 16)
    if head[:4] == ZIP_MAGIC:
        return "zip"
    from .legacy import is_tar  # the other formats' readers load only for a file that is not a zip (startup)
    from .npy import NPY_MAGIC
    from .safetensors import looks_like_safetensors
    from .sharded import parse_index

    if is_tar(f):  # before PYTORCH1: torch tries tarfile on every non-zip file, whatever its first bytes
        return "torch-tar"
    if head[:6] == NPY_MAGIC:
        return "npy"
    if head[:8] == b"PYTORCH1":
        return "torch-preview"
    if looks_like_safetensors(head, f.size):
        return "safetensors"
    if head.lstrip()[:1] == b"{" and f.size <= limits.max_header_bytes \
            and parse_index(f.pread(0, f.size)) is not None:
        return "sharded-index"
    if head[:1] == b"\x80":
        return "pickle"
    return "maybe-text"


def classify_text(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """For content that did not parse as a pickle: what kind of non-checkpoint it is."""
    sample = f.pread(0, min(f.size, limits.max_text_sniff))
    if b"\x00" in sample:
        return "unknown"
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    if text.startswith("version https://git-lfs.github.com/spec/"):
        return "lfs-pointer"
    if os.path.basename(path).endswith(".pth") and _is_site_pth(text):
        return "python-pth"
    return "text"


def _is_site_pth(text: str) -> bool:
    """site.py reads each line as a comment, an ``import`` line, or a directory path."""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("#", "import ", "import\t")):
            continue
        if any(c in s for c in "\x00") or len(s) > 4096:
            return False
    return True


# What makes an archive a checkpoint: torch.save's own records (zip and the 0.1 tar format), or a
# member that is itself a checkpoint file (ckptlint.filenames: a zipped/tarred model is not checked
# member by member, so it is never a note).
TORCH_RECORDS = frozenset({"data.pkl", "constants.pkl", "version", ".format_version", "byteorder",
                           "archive_format", "model.json", "serialization_id", "sys_info", "pickle",
                           "storages", "tensors"})


def not_checkpoint_archive(f: CountingFile, kind: str, reason: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """For a zip or tar that no reader could read (``reason``): the not-a-checkpoint reason when its
    member list is readable and names no torch record and no checkpoint file; None when it is (or may
    be) one, so a cut-short or corrupt checkpoint archive stays an error."""
    names = _members(f, kind, limits)
    if names is None:
        return None
    for name in names:
        base = posixpath.basename(name.rstrip("/")).lower()
        folder = posixpath.basename(posixpath.dirname(name.rstrip("/"))).lower()
        if base in TORCH_RECORDS or is_checkpoint_name(base) or (folder == "data" and base.isdigit()) \
                or (folder == "code" and base.endswith((".py", ".debug_pkl"))):
            return None
    shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
    return (f"a {'zip' if kind == 'zip' else 'tar'} archive of {len(names)} file{'s' if len(names) != 1 else ''}"
            f"{' (' + shown + ')' if names else ''} with no checkpoint among them, not a checkpoint; {reason}")


def _members(f: CountingFile, kind: str, limits: Limits) -> list[str] | None:
    from .tar import TarFallback, TorchFails, load_members, open_torch_tar
    from .zipreader import open_archive

    budget = Budget(limits)  # a listing of its own: the failed read may have spent the file's budget
    try:
        if kind == "zip":
            return [m.name for m in open_archive(f, limits, budget).members]
        tar = open_torch_tar(f, budget)
        return None if tar is None else [m.name for m in load_members(tar, budget)]
    except (FormatError, TarFallback, TorchFails, OSError, ValueError, EOFError):
        return None


def is_npz(f: CountingFile) -> bool:
    """The zip's first local header names a ``.npy`` member (what ``np.savez`` writes first): formats.npy
    loads only for such a zip (startup)."""
    head = f.pread(0, 30)
    if len(head) < 30:
        return False
    n = int.from_bytes(head[26:28], "little")
    return f.pread(30, n).lower().endswith(b".npy")
