"""Hard bounds on the work one input file may cause.

Every loop that input drives is bounded, so a hostile file ends in a clean
finding instead of a hang or a memory blow-up. :class:`Limits` holds the
numbers; :class:`Budget` is the one meter per *file* that every reader charges
(zip inflation, tar members, every pickle stream, safetensors entries), so a
bound cannot be dodged by splitting the work over many members or streams.
"""

from __future__ import annotations

from .errors import LimitExceeded
from .record import record


@record
class Limits:
    """The readers' bounds (sizes, counts, depths) on what one file may make them read or build."""

    max_pickle_bytes: int = 1 << 30
    """Largest single pickle stream (or zip member read into memory) accepted."""
    max_inflated_bytes: int = 1 << 30
    """Bytes read or decompressed into memory for parsing, whole file (tensor data is never read)."""
    max_opcodes: int = 20_000_000
    """Pickle opcodes executed, whole file (all streams, members and nested pickles)."""
    max_memo: int = 5_000_000
    """Memo entries, whole file."""
    max_memo_index: int = 1 << 31
    """Largest memo index a PUT may name (an index that is not the next one makes the memo a dict: a big index
    allocates nothing)."""
    max_depth: int = 10_000
    """Open MARKs on the unpickler's stack."""
    max_walk_depth: int = 400
    """Container nesting followed when collecting tensors and structure."""
    max_streams: int = 10_000
    """Pickle streams parsed, whole file (legacy files, zip members, nested pickles)."""
    max_zip_entries: int = 1_000_000
    """Archive members (zip entries, tar members), whole file."""
    max_tar_members: int = 50_000
    """Tar members, whole file: tarfile parses ~10 k headers/s, torch's tars have four."""
    max_tensors: int = 500_000
    """Tensor records (pickled tensors, safetensors entries), whole file."""
    max_header_bytes: int = 100_000_000
    """safetensors header size (the Rust reader's own limit)."""
    max_shards: int = 100_000
    max_text_sniff: int = 1 << 20
    max_nested: int = 64
    """Byte strings followed into ``pickle.loads``-style loaders, whole file."""
    max_hash_nodes: int = 5_000_000
    """Tuple nodes hashed for set items and dict keys, whole file: Python's tuple hash recurses into the items
    every time (no cache), so 40 DUP'd TUPLE2s make a tuple whose hash visits 2**40 nodes."""
    max_globals: int = 50_000
    """Global references recorded, whole file (a name repeated in one stream is recorded 8 times at most)."""
    max_spool_bytes: int = 64 << 30
    """Bytes copied from standard input, bytes or a file object to a temporary file (readers need a path)."""


DEFAULT_LIMITS = Limits()


class Budget:
    """What one file has used so far; every ``charge_*`` raises :class:`LimitExceeded` past its bound.

    One is made per file (``CountingFile.budget``) and handed to every reader of
    that file. The error names the :class:`Limits` field, so the finding can say
    which bound was hit and how to raise it.
    """

    __slots__ = ("globals", "hashed", "inflated_bytes", "limits", "members", "memo", "nested", "opcodes", "readers",
                 "streams", "tensors")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.inflated_bytes = 0
        self.opcodes = 0
        self.memo = 0
        self.streams = 0
        self.members = 0
        self.tensors = 0
        self.nested = 0
        self.globals = 0
        self.hashed = 0
        self.readers: list[object] = []
        """Readers holding partial results for this file (so a stop never throws them away)."""

    def _over(self, field: str, what: str) -> LimitExceeded:
        return LimitExceeded(field, getattr(self.limits, field), what)

    def charge_bytes(self, n: int, what: str = "bytes read or inflated for parsing") -> None:
        """Bytes pulled into memory for parsing (inflated members, pickle streams, headers)."""
        self.inflated_bytes += n
        if self.inflated_bytes > self.limits.max_inflated_bytes:
            raise self._over("max_inflated_bytes", what)

    def charge_opcodes(self, n: int) -> None:
        self.opcodes += n
        if self.opcodes > self.limits.max_opcodes:
            raise self._over("max_opcodes", "pickle opcodes in the whole file")

    def opcodes_left(self) -> int:
        """How many more opcodes may run (the VM checks its own counter against this)."""
        return self.limits.max_opcodes - self.opcodes

    def charge_memo(self, n: int = 1) -> None:
        self.memo += n
        if self.memo > self.limits.max_memo:
            raise self._over("max_memo", "pickle memo entries in the whole file")

    def charge_stream(self) -> None:
        self.streams += 1
        if self.streams > self.limits.max_streams:
            raise self._over("max_streams", "pickle streams in the whole file")

    def charge_members(self, n: int = 1) -> None:
        """Archive members (zip entries, tar members)."""
        self.members += n
        if self.members > self.limits.max_zip_entries:
            raise self._over("max_zip_entries", "archive members")

    def charge_tensors(self, n: int = 1) -> None:
        self.tensors += n
        if self.tensors > self.limits.max_tensors:
            raise self._over("max_tensors", "tensor records in the whole file")

    def charge_nested(self) -> None:
        self.nested += 1
        if self.nested > self.limits.max_nested:
            raise self._over("max_nested", "nested pickles followed")

    def charge_globals(self) -> None:
        self.globals += 1
        if self.globals > self.limits.max_globals:
            raise self._over("max_globals", "global references recorded in the whole file")

    def hash_room(self) -> int:
        return self.limits.max_hash_nodes - self.hashed

    def charge_hash(self, n: int) -> None:
        self.hashed += n
        if self.hashed > self.limits.max_hash_nodes:
            raise self._over("max_hash_nodes", "tuple nodes hashed for set items and dict keys")
