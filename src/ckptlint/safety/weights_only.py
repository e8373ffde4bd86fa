"""Predict exactly what ``torch.load(path, weights_only=True)`` will do, statically, for every file.

torch's restricted unpickler walks the streams ``torch.load`` reads and stops
at the first opcode, global or target type it refuses; the file loads when
there is none. We list every blocker (not only the first), in the order torch
meets them, so the first one is the error torch would raise. A file ckptlint
cannot read gets a definite "no" too (:func:`unreadable_verdict`): torch
refuses it as well, and "don't know" would read as "fine".
"""

from __future__ import annotations

import os
import re

from ..inventory import Inventory
from ..results import Blocker, Verdict
from ..vocab import Category
from .allowlist import NEWEST_SUPPORTED_TORCH, static_allowed_globals
from .classify import ModelClasses, classify, worst
from .locations import location_blockers
from .names import DATA
from .wo_judge import legacy_storage_blockers, pickle_blockers, storage_blockers, torch_name, zip_record_blockers

# Since this release, torch.load hands paths ending in .safetensors to the safetensors package
# (verified on 2.14.1; earlier releases parse them as pickles and fail).
SAFETENSORS_BY_PATH_SINCE = (2, 14)


def categorize(inv: Inventory, allowed: frozenset[str]) -> dict[str, Category]:
    """Every referenced global's category; a name read two ways (module/name split) gets the worse one.

    A GLOBAL that torch's own protocol-2 mapping turns into an allowed name (``__builtin__.set``
    at protocol 3) is allowed: that is what torch loads; otherwise the spelling and torch's
    mapped name are both classified and the worse one counts."""
    models = ModelClasses(inv.structure)  # walked only if a global's category needs it
    found: dict[str, list[Category]] = {}
    for g in inv.globals:
        cats = found.setdefault(g.qualname, [])
        mapped = torch_name(g) if g.opcode == "GLOBAL" else g.qualname
        if mapped != g.qualname:
            module = mapped.rsplit(".", 1)[0]
            cat = classify(mapped, module, allowed=allowed, model_classes=models)
            if cat == "allowed":
                cats.append(cat)
                continue
            cats.append(cat)
        cats.append(classify(g.qualname, g.module, allowed=allowed, model_classes=models))
    return {q: worst(cats) for q, cats in found.items()}


def predict(inv: Inventory, allowed: frozenset[str], torch_version: tuple[int, int] | None = None) -> Verdict:
    version = torch_version or NEWEST_SUPPORTED_TORCH
    vtext = f"{version[0]}.{version[1]}"
    categories = categorize(inv, allowed)
    by_path = os.fspath(inv.path).endswith(".safetensors") and version >= SAFETENSORS_BY_PATH_SINCE
    fmt = inv.format
    if by_path:
        if fmt == "safetensors":
            return Verdict(True, (), vtext, "loads (torch hands .safetensors paths to the safetensors package)",
                           categories)
        return _refused(f"named .safetensors but is {fmt}: torch {vtext} reads it with the safetensors "
                        "package, which fails", vtext, categories, "rename the file to .pt")
    if fmt == "safetensors":
        return _refused("a safetensors file is not a torch.save file", vtext, categories,
                        "load it with safetensors.torch.load_file, or name it *.safetensors")
    if fmt == "torchscript":
        return _refused("TorchScript archive: weights_only=True refuses TorchScript", vtext, categories,
                        "load it with torch.jit.load only if you trust it, or ship a state_dict")
    if fmt in ("torch-export", "dcp"):  # formats.pt2 / formats.dcp (H11): torch.load cannot open them at all
        what = "a torch.export archive (no data.pkl)" if fmt == "torch-export" else "a DCP checkpoint folder"
        return _refused(f"{what}: torch.load cannot open it", vtext, categories,
                        "torch.export.load(path)" if fmt == "torch-export" else
                        "torch.distributed.checkpoint.load, or format_utils.dcp_to_torch_save, for a folder you trust")
    if fmt == "torch-tar":
        return _refused("legacy tar format: weights_only=True refuses it", vtext, categories,
                        "re-save from a trusted load with torch.save(model.state_dict(), f)")
    shard_blockers = _shard_formats(inv, version) if fmt == "sharded-index" else []
    user_allowed = allowed - static_allowed_globals(min(version, NEWEST_SUPPORTED_TORCH))
    before = zip_record_blockers(inv) if fmt == "torch-zip" or (inv.facts.extra or {}).get("torch_refuses") else []
    after = (storage_blockers(inv) if fmt == "torch-zip" else legacy_storage_blockers(inv)) \
        + location_blockers(inv)
    found = tuple(shard_blockers) + tuple(before) + tuple(pickle_blockers(inv, allowed, user_allowed, categories)) \
        + tuple(after)
    if fmt == "pickle":
        # torch.load reads a plain pickle as the legacy format's magic number, then compares it
        found += (Blocker("format", "not a torch.save file (torch: \"Invalid magic number; corrupt file?\")"),)
    return Verdict(not found, found, vtext, advice(found, _loaded_categories(inv, categories)) if found
                   else "loads with weights_only=True", categories)


def unreadable_verdict(reason: str, torch_version: tuple[int, int] | None = None) -> Verdict:
    """The verdict for a file ckptlint cannot read: torch.load refuses it too (a definite no)."""
    version = torch_version or NEWEST_SUPPORTED_TORCH
    bound = re.match(r"limit (\w+)=", reason)
    advice = (f"ckptlint stopped at its {bound.group(1)} bound: raise it (check_file(..., limits=Limits(...))) "
              "for torch's answer" if bound else "do not load this file: it is not a checkpoint torch.load can read")
    return Verdict(False, (Blocker("format", f"unreadable: {reason}"),), f"{version[0]}.{version[1]}", advice)


def _loaded_categories(inv: Inventory, categories: dict[str, Category]) -> set[Category]:
    loaded = set(inv.facts.loaded_streams)
    return {categories[g.qualname] for g in inv.globals if g.stream in loaded and g.qualname in categories}


def _shard_formats(inv: Inventory, version: tuple[int, int]) -> list[Blocker]:
    """For a shard index the verdict is about its shards, each loaded by torch.load on its own path."""
    out = []
    for shard, fmt in (inv.facts.extra.get("shards") or {}).items():
        st_name = shard.endswith(".safetensors") and version >= SAFETENSORS_BY_PATH_SINCE
        if (fmt == "safetensors" and st_name) or (fmt in ("torch-zip", "torch-legacy") and not st_name):
            continue
        out.append(Blocker("format", f"shard {shard} ({fmt}) is refused by torch.load(weights_only=True)", shard))
    return out


def _refused(reason: str, vtext: str, categories: dict[str, Category], fix: str) -> Verdict:
    return Verdict(False, (Blocker("format", reason),), vtext, fix, categories)


def advice(blockers: tuple[Blocker, ...], loaded: set[Category] | frozenset[Category] = frozenset()) -> str:
    """One line: what to do. ``add_safe_globals`` is advised only when every blocker is a name on
    the exact data list (safety/names.py), never for anything else."""
    cats = {b.category for b in blockers if b.kind == "global" or b.cls} | set(loaded)
    if "dangerous" in cats:
        return "do not load this file: it references globals that can run code"
    if "model" in cats:
        return ("full-model pickle: weights_only=True refuses its classes; ask for a state_dict "
                "(torch.save(model.state_dict(), f)) or a safetensors file; check --model CLASS prints loading "
                "code where that is safe")
    if "unknown" in cats:
        names = [b.detail for b in blockers if b.category == "unknown"]
        return (f"unknown globals ({', '.join(names[:5])}): weights_only=True refuses them; re-save the "
                "checkpoint with plain types (or trust only classes you wrote yourself)")
    if any(b.kind == "opcode" for b in blockers):
        return ("saved with pickle protocol > 2: re-save from a trusted load with the default protocol "
                "(torch.save(obj, f))")
    names = [b.cls or b.detail for b in blockers]
    if all((b.kind == "global" or b.cls) and b.category == "data" for b in blockers) \
            and all(n in DATA for n in names):
        return safe_globals_line(list(dict.fromkeys(names)))
    return "weights_only=True refuses this file: " + "; ".join(b.detail for b in blockers[:3])


def safe_globals_line(qualnames: list[str]) -> str:
    """The exact allowlisting code for names on the data list (ValueError for any other name).

    The ``(object, "module.name")`` form matches the name the file uses even where
    the object's own ``__module__`` differs (numpy 2 moved ``numpy.core`` to ``numpy._core``).
    """
    refused = [q for q in qualnames if q not in DATA]
    if refused:
        raise ValueError(f"not on the data list, never advised for add_safe_globals: {', '.join(refused)}")
    modules = sorted({q.rsplit(".", 1)[0] for q in qualnames})
    imports = "; ".join(f"import {m}" for m in modules)
    entries = ", ".join(f'({q}, "{q}")' for q in qualnames)
    return f"{imports}; torch.serialization.add_safe_globals([{entries}])"
