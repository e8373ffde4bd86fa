"""The library view's data (``LibraryView``) and its helpers; ``compat.libraries`` dispatches."""

from __future__ import annotations

from ...record import field, record
from ...targets.signature import Signature
from ..fixes import Fix
from ..unwrap import StateDict


@record(frozen=False)
class LibraryView:
    library: str
    """``transformers``, ``peft`` or ``timm``."""
    loader: str
    """The call the view mirrors, e.g. ``BertModel.from_pretrained``."""
    loads: bool
    """The loader's verdict: it returns a model (maybe with keys initialised) rather than raising."""
    missing: tuple[str, ...] = ()
    """Keys the loader leaves at their initial values (after its own ignore lists)."""
    unexpected: tuple[str, ...] = ()
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    """Differences torch reports that the loader handles itself, each with why."""
    notes: list[str] = field(default_factory=list)
    snippet: str = ""
    """Loading code in the library's own way (empty when the generic snippet is the right one)."""
    no_generic_fix: bool = False
    """The generic rename/drop fix would be wrong (it would drop every adapter weight)."""
    explained_missing: tuple[str, ...] = ()
    """torch's missing keys the loader explains (filled, tied or deliberately ignored)."""
    explained_unexpected: tuple[str, ...] = ()
    fix: Fix | None = None
    """With ``no_generic_fix``: the library's own way to load it (its snippet), offered instead."""


def listing(keys: list[str] | tuple[str, ...], limit: int = 8) -> str:
    more = f", …and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


__all__ = ["LibraryView", "library_notes", "library_snippet", "listing"]


def library_snippet(path: str, sig: Signature, sd: StateDict, fix: Fix) -> str:
    """The generic snippet, with a transformers target built from its config (it has no plain constructor)."""
    from ..snippet import make_snippet

    snippet = make_snippet(path, sig.target, sig.kwargs, sd.path, fix)
    module, _, attr = sig.target.partition(":")
    config = sig.kwargs.get("config")
    if module != "transformers" or not isinstance(config, str):
        return snippet
    overrides = "".join(f", {k}={v!r}" for k, v in sig.kwargs.items() if k != "config")
    method = "from_config" if attr.startswith("Auto") else "_from_config"
    build = f"model = transformers.{attr}.{method}(transformers.AutoConfig.from_pretrained({config!r}{overrides}))"
    lines = ["import transformers" if line.startswith(f"from {module} import") else
             build if line.startswith("model = ") else line for line in snippet.splitlines()]
    return "\n".join(lines) + "\n"


def library_notes(v: LibraryView | None) -> tuple[str, ...]:
    """The view as report notes (JSON ``compat.notes``): the loader's verdict and sets, then its notes."""
    if v is None:
        return ()
    head = f"{v.loader}: {'loads' if v.loads else 'raises'}"
    sets = [f"{name} {listing(list(keys), 5)}" for name, keys in
            (("missing", v.missing), ("unexpected", v.unexpected), ("mismatched", tuple(v.mismatched))) if keys]
    return (head + (" (" + "; ".join(sets) + ")" if sets else ""), *v.ignored, *v.notes)
