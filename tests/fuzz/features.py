"""Generator features a run can leave out (the short run leaves out those with an open disagreement)."""

from __future__ import annotations

EXCLUDED: set[str] = set()


def on(feature: str) -> bool:
    """Whether generators may use ``feature`` in this input (see FEATURES in docs/fuzzing.md)."""
    return feature not in EXCLUDED
