"""timm's ``load_checkpoint`` / ``load_state_dict`` (timm/models/_helpers.py), mirrored.

With ``use_ema=True`` (its default) it takes ``state_dict_ema`` when present and not None, else
``model_ema``, else ``state_dict``, else ``model``, else the whole dict; ``clean_state_dict`` strips
leading ``_orig_mod.`` / ``module.`` (in either order); then ``model.load_state_dict(strict=True)``.
Its ``torch.load`` runs under ``safe_globals([argparse.Namespace])``: a training file's ``args`` load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ...errors import UnwrapError
from ...inventory import Inventory
from ...targets.signature import Signature
from ..compare import CompatResult
from ..fixes import Fix, infer_fix
from ..unwrap import StateDict, find_state_dict
from .view import LibraryView, listing

PICK_ORDER = ("state_dict_ema", "model_ema", "state_dict", "model")
CLEAN = [("^(?:_orig_mod\\.|module\\.)*", "")]


def _top_keys(inv: Inventory) -> dict[str, Any] | None:
    root = inv.structure
    if isinstance(root, dict) and "__object__" in root and isinstance(root.get("items"), dict):
        root = root["items"]
    if not isinstance(root, dict) or "__tensor__" in root or "__object__" in root:
        return None
    return root


def picked_key(inv: Inventory) -> str | None:
    """The entry timm's loader takes (None: the whole dict); mirrors its ``checkpoint.get(k) is not None``."""
    top = _top_keys(inv)
    if top is None:
        return None
    for name in PICK_ORDER:
        value = top.get(name)
        if name in top and (name == "state_dict" or name == "model" or not _is_none(value)):
            return name
    return None


def _is_none(node: Any) -> bool:
    return node is None or (isinstance(node, dict) and node.get("__none__") is True)


def view(inv: Inventory, sig: Signature, sd: StateDict, result: CompatResult, model: Any,
         run: Callable[[StateDict], CompatResult]) -> LibraryView | None:
    is_timm = sig.target.split(":")[0].split(".")[0] == "timm"
    top = _top_keys(inv)
    if not is_timm or top is None or not any(k in top for k in PICK_ORDER):
        return None
    name = picked_key(inv)
    try:
        picked = find_state_dict(inv, (name,)) if name else find_state_dict(inv, ())
    except UnwrapError as e:
        return LibraryView("timm", "timm.models.load_checkpoint", False, notes=[f"its pick {name!r}: {e}"])
    cleaned = StateDict(picked.path, {re.sub(CLEAN[0][0], "", k): v for k, v in picked.entries.items()},
                        picked.metadata, picked.how, picked.ordered)
    res = run(cleaned)
    notes = [f"timm.models.load_checkpoint takes {name!r}" + (" (use_ema=True, its default)" if "ema" in (name or "")
                                                               else "")]
    others = [k for k in PICK_ORDER if k in top and k != name]
    if others:
        notes.append(f"also in the file: {', '.join(others)}")
    if any(k != re.sub(CLEAN[0][0], "", k) for k in picked.entries):
        notes.append("clean_state_dict strips the 'module.' / '_orig_mod.' prefixes")
    if "args" in top:
        notes.append("its torch.load allows argparse.Namespace (safe_globals), so a training file's 'args' load")
    if res.shape_mismatch:
        notes.append(f"a different num_classes: resized head ({listing(sorted(res.shape_mismatch), 3)}); "
                     "load with strict=False after dropping those keys, or build the model with the saved "
                     "num_classes and call reset_classifier(n)")
    fix = None
    if not res.strict_ok:
        fix = infer_fix(sig, cleaned, res, run)
        if fix is not None:
            fix.snippet = _timm_snippet(inv.path, sig, cleaned, fix)
    factory = sig.target
    attr = factory.partition(":")[2]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sig.kwargs.items())
    snippet = "\n".join([
        "import timm", "",
        f"model = timm.create_model({attr!r}{', ' + kwargs if kwargs else ''})",
        f"timm.models.load_checkpoint(model, {inv.path!r}, strict={res.strict_ok})", ""])
    return LibraryView("timm", "timm.models.load_checkpoint", res.nonstrict_ok, res.missing, res.unexpected,
                       dict(res.shape_mismatch), (), notes, snippet if res.nonstrict_ok else "",
                       no_generic_fix=True, fix=fix)


def _timm_snippet(path: str, sig: Signature, sd: StateDict, fix: Fix) -> str:
    """The generic snippet, reading the file as timm does: its pick, prefixes stripped, and
    ``argparse.Namespace`` allowed (a plain ``torch.load(weights_only=True)`` refuses a training file's args)."""
    from ..snippet import make_snippet

    lines = make_snippet(path, sig.target, sig.kwargs, sd.path, fix).splitlines()
    out: list[str] = []
    for line in lines:
        if line.startswith("checkpoint = torch.load("):
            out.append("import timm.models")
            out.append(f"state_dict = timm.models.load_state_dict({path!r})  # timm's pick; Namespace args allowed")
        elif not line.startswith("state_dict = checkpoint"):
            out.append(line)
    return "\n".join(out) + "\n"
