"""Predict exactly what ``torch.load(path, weights_only=True)`` will do, statically.

torch's restricted unpickler walks the streams ``torch.load`` reads and stops
at the first opcode, global or target type it refuses; the file loads when
there is none. We list every blocker (not only the first), in the order torch
meets them, so the first one is the error torch would raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..inventory import Inventory
from ..results import Blocker, Verdict
from .allowlist import BLOCKLISTED_MODULES, NEWEST_SUPPORTED_TORCH
from .classify import classify, module_classes

# Since this release, torch.load hands paths ending in .safetensors to the safetensors package
# (verified on 2.14.1; earlier releases parse them as pickles and fail).
SAFETENSORS_BY_PATH_SINCE = (2, 14)


def categorize(inv: Inventory, allowed: frozenset[str]) -> dict[str, str]:
    models = module_classes(inv.structure)
    return {g.qualname: classify(g.qualname, g.module, allowed=allowed, model_classes=models)
            for g in inv.globals}


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
    if fmt == "torch-tar":
        return _refused("legacy tar format: weights_only=True refuses it", vtext, categories,
                        "re-save from a trusted load with torch.save(model.state_dict(), f)")
    shard_blockers = _shard_formats(inv, version) if fmt == "sharded-index" else []

    loaded = list(inv.facts.loaded_streams)
    order = {s: i for i, s in enumerate(loaded)}
    blockers: list[tuple[int, int, Blocker]] = []
    for g in inv.globals:
        if g.stream not in order:
            continue
        if g.qualname in allowed and g.module not in BLOCKLISTED_MODULES:
            continue
        b = Blocker("global", g.qualname, g.stream, g.offset, categories.get(g.qualname))
        blockers.append((order[g.stream], g.offset, b))
    blocking_globals = {b.detail for _, _, b in blockers}
    for e in inv.events:
        if e.stream not in order:
            continue
        if e.kind.endswith("-class"):
            # Allowlisting the class's own global also clears these, so they add nothing to say.
            if e.detail in allowed or e.detail in blocking_globals or (
                    e.kind == "newobj-class" and e.detail == "torch.nn.parameter.Parameter"):
                continue
            b = Blocker("structure", f"{e.kind[:-6]} of {e.detail}", e.stream, e.offset,
                        classify(e.detail, e.detail.rsplit(".", 1)[0], allowed=allowed), e.detail)
        elif e.kind == "opcode":
            b = Blocker("opcode", e.detail, e.stream, e.offset)
        else:
            b = Blocker("structure", f"{e.kind}: {e.detail}", e.stream, e.offset)
        blockers.append((order[e.stream], e.offset, b))
    blockers.sort(key=lambda t: (t[0], t[1]))
    found = tuple(shard_blockers) + tuple(_dedupe(b for _, _, b in blockers))
    if fmt == "pickle" and not found:
        found = (Blocker("format", "not a torch.save file (torch: \"Invalid magic number; corrupt file?\")"),)
    return Verdict(not found, found, vtext, advice(found) if found else "loads with weights_only=True",
                   categories)


def _shard_formats(inv: Inventory, version: tuple[int, int]) -> list[Blocker]:
    """For a shard index the verdict is about its shards, each loaded by torch.load on its own path."""
    out = []
    for shard, fmt in (inv.facts.extra.get("shards") or {}).items():
        st_name = shard.endswith(".safetensors") and version >= SAFETENSORS_BY_PATH_SINCE
        if (fmt == "safetensors" and st_name) or (fmt in ("torch-zip", "torch-legacy") and not st_name):
            continue
        out.append(Blocker("format", f"shard {shard} ({fmt}) is refused by torch.load(weights_only=True)", shard))
    return out


def _refused(reason: str, vtext: str, categories: dict[str, str], fix: str) -> Verdict:
    return Verdict(False, (Blocker("format", reason),), vtext, fix, categories)


def _dedupe(blockers: Iterable[Blocker]) -> list[Blocker]:
    seen: set[tuple[str, str]] = set()
    out: list[Blocker] = []
    for b in blockers:
        if (b.kind, b.detail) not in seen:
            seen.add((b.kind, b.detail))
            out.append(b)
    return out


def advice(blockers: tuple[Blocker, ...]) -> str:
    cats = {b.category for b in blockers if b.kind == "global" or b.cls}
    if "dangerous" in cats:
        return "do not load this file: it references globals that can run code"
    if "model" in cats:
        return ("full-model pickle: load it once where you trust it and re-save model.state_dict() "
                "(torch.save or safetensors)")
    if "unknown" in cats:
        names = [b.detail for b in blockers if b.category == "unknown"]
        return (f"unknown globals ({', '.join(names[:5])}): importing them runs their module's code; "
                "allowlist them only if you trust them")
    if any(b.kind == "opcode" for b in blockers):
        return ("saved with pickle protocol > 2: re-save from a trusted load with the default protocol "
                "(torch.save(obj, f))")
    if all(b.category == "data" and (b.kind == "global" or b.cls) for b in blockers):
        return safe_globals_line([b.cls or b.detail for b in blockers])
    return "weights_only=True refuses this file: " + "; ".join(b.detail for b in blockers[:3])


def safe_globals_line(qualnames: list[str]) -> str:
    """The exact allowlisting code for data globals.

    The ``(object, "module.name")`` form matches the name the file uses even where
    the object's own ``__module__`` differs (numpy 2 moved ``numpy.core`` to ``numpy._core``).
    """
    modules = sorted({q.rsplit(".", 1)[0] for q in qualnames})
    imports = "; ".join(f"import {m}" for m in modules)
    entries = ", ".join(f'({q}, "{q}")' for q in qualnames)
    return f"{imports}; torch.serialization.add_safe_globals([{entries}])"
