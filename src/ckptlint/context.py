"""What a rule sees about one file: the analyses, already computed, and the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .record import field, record

if TYPE_CHECKING:
    from .compat.analyze import CompatAnalysis
    from .config import Config
    from .inventory import Inventory
    from .results import Verdict
    from .targets.resolve import Target


@record
class FileContext:
    """What a ``ckptlint_check_file`` hook gets for one readable file."""

    path: str
    inventory: Inventory
    verdict: Verdict
    trusted: frozenset[str] = frozenset()
    target: Target | None = None
    compat: CompatAnalysis | None = None
    compat_error: str | None = None
    """Why no compat report exists although a target applies (no state_dict found …)."""
    config: Config | None = None
    extra: dict[str, Any] = field(default_factory=dict)
