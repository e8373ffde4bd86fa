"""The compatibility part of the result model: :class:`CompatReport` (one file against one target) and its
:class:`CompatFix`. Exported from :mod:`ckptlint.results` and ``ckptlint``; in a module of their own so a
check without a target does not create them (startup: docs/development.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from .record import record


@record
class CompatFix:
    """How to make the checkpoint load: verified by replaying ``load_state_dict``."""

    renames: tuple[tuple[str, str], ...]
    """(regex, replacement) applied in order to every key, as re.sub does."""
    drop: tuple[str, ...]
    random_init: tuple[str, ...]
    """Model keys the fixed load leaves at their initial values."""
    strict: bool
    diagnosis: tuple[str, ...]
    snippet: str
    transpose: tuple[str, ...] = ()
    """Keys (after renaming) stored transposed (Conv1D-style): the snippet loads them as ``.t()``."""


@record
class CompatReport:
    """One file against one target: torch's verdict for ``load_state_dict`` and the fix."""

    target: str
    state_dict_path: tuple[str | int, ...]
    state_dict_found_by: str
    strict_ok: bool
    nonstrict_ok: bool
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatch: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]
    """key -> (checkpoint shape, model shape)."""
    dtype_mismatch: Mapping[str, tuple[str, str]]
    """key -> (checkpoint dtype, model dtype): loads with a cast."""
    non_tensor: Mapping[str, str]
    load_error: str | None
    exact: bool
    """False when a snapshot had to replay default rules for modules with custom load logic."""
    notes: tuple[str, ...]
    fix: CompatFix | None


__all__ = ["CompatFix", "CompatReport"]
