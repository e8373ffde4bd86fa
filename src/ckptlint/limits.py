"""Hard bounds on the work one input file may cause.

Every loop that input drives is bounded by one of these, so a hostile file
ends in a clean error instead of a hang or a memory blow-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_pickle_bytes: int = 1 << 30
    """Largest pickle stream (or zip member read into memory) accepted."""
    max_opcodes: int = 50_000_000
    """Opcodes executed per stream."""
    max_memo: int = 10_000_000
    """Distinct memo entries per stream."""
    max_memo_index: int = 1 << 31
    """Largest memo index a PUT may name."""
    max_depth: int = 10_000
    """Open MARKs on the unpickler's stack."""
    max_walk_depth: int = 400
    """Container nesting followed when collecting tensors and structure."""
    max_streams: int = 10_000
    """Pickle streams parsed per file (legacy files, zip members)."""
    max_zip_entries: int = 1_000_000
    max_header_bytes: int = 100_000_000
    """safetensors header size (the Rust reader's own limit)."""
    max_shards: int = 100_000
    max_text_sniff: int = 1 << 20


DEFAULT_LIMITS = Limits()
