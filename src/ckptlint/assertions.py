"""Helpers for ``Report.assert_safe()`` / ``Report.assert_compatible()`` failure messages.

The assertions raise ``AssertionError`` themselves (no bare ``assert``), so the message
is the same with or without pytest's assertion rewriting. This module sits below the
result model (it knows tables and configuration, not reports), so the model can use it.
"""

from __future__ import annotations

from tabulate import tabulate

_MAX_ROWS = 60


def table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    """At most ``_MAX_ROWS`` rows, long cells wrapped, then how many more there were."""
    shown = rows[:_MAX_ROWS]
    text: str = tabulate(shown, headers=headers, maxcolwidths=[None, None, 40, 70][: len(headers)])
    if len(rows) > len(shown):
        text += f"\n… and {len(rows) - len(shown)} more rows"
    return text


def config_allows(path: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The allow patterns of the ``[tool.ckptlint]`` target that matches the file, if any."""
    try:
        from .config import config_for

        entry = config_for(path).target_for(path)
    except Exception:  # noqa: BLE001 - a broken config is reported by check() itself
        return (), (), ()
    if entry is None:
        return (), (), ()
    return entry.allow_missing, entry.allow_unexpected, entry.allow_mismatch
