"""What a library's own loader does with a checkpoint: transformers' ``from_pretrained``, peft's adapter
loading, timm's ``load_checkpoint``. torch's ``load_state_dict`` verdict stays the compat result; this
view says what the library would report, which differences it ignores, and how to load the file its way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...inventory import Inventory
from ...targets.signature import Signature
from ..compare import CompatResult
from ..unwrap import StateDict
from .view import LibraryView, library_notes, library_snippet, listing


def library_view(inv: Inventory, sig: Signature, sd: StateDict, result: CompatResult,
                 model: Any, run: Callable[[StateDict], CompatResult]) -> LibraryView | None:
    """The view of the first library that recognises the checkpoint or the target; None otherwise."""
    from . import peft, timm, transformers_view

    for probe in (peft.view, transformers_view.view, timm.view):
        try:
            found = probe(inv, sig, sd, result, model, run)
        except ImportError:
            found = None  # the library is not installed: its loader cannot be mirrored
        if found is not None:
            return found
    return None


__all__ = ["LibraryView", "library_notes", "library_snippet", "library_view", "listing"]
