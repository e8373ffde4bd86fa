"""Generator features a run can leave out (the short run leaves out those with an open disagreement).

Generators ask :func:`on` right where they would use a feature (``pickle:ext``,
``zip:dup``, ``tar:sparse`` …); a True answer is recorded in :data:`USED`, which the
worker reports with each input so a disagreement class can be traced to the features
all its inputs share.
"""

from __future__ import annotations

EXCLUDED: set[str] = set()
USED: set[str] = set()


def on(feature: str) -> bool:
    """Whether generators may use ``feature`` in this input; records it as used when they may."""
    if feature in EXCLUDED or feature.split(":", 1)[0] + ":*" in EXCLUDED:
        return False
    USED.add(feature)
    return True


def reset(exclude: set[str] | frozenset[str] | tuple[str, ...] | list[str] = ()) -> None:
    EXCLUDED.clear()
    EXCLUDED.update(exclude)
    USED.clear()
