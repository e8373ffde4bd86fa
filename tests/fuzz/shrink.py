"""Shrink a disagreeing input to a small one that still disagrees the same way (ddmin over bytes)."""

from __future__ import annotations

from typing import Any

from .pool import Pool


def same_class(pool: Pool, data: bytes, family: str, klass: str) -> bool:
    reply: dict[str, Any] = pool.one({"data": data.hex(), "family": family})
    return any(d["klass"] == klass for d in reply.get("disagreements", []))


def shrink(pool: Pool, data: bytes, family: str, klass: str, budget: int = 250) -> bytes:
    """Delete chunks, halving their size, while the input keeps the disagreement ``klass``."""
    n = 2
    while len(data) >= 2 and budget > 0:
        size = -(-len(data) // n)
        for i in range(n):
            candidate = data[:i * size] + data[(i + 1) * size:]
            budget -= 1
            if candidate and same_class(pool, candidate, family, klass):
                data = candidate
                n = max(n - 1, 2)
                break
            if budget <= 0:
                break
        else:
            if n >= len(data):
                break
            n = min(len(data), n * 2)
    return data
