"""The ready-to-paste loading code for a checkpoint and a target (tests run it unchanged)."""

from __future__ import annotations

import re
from typing import Any

from ..inventory import Inventory
from ..record import record
from ..results import Verdict
from .fixes import Fix

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_TAKEN = {"collections", "re", "torch", "model", "checkpoint", "state_dict", "renames", "drop", "rename",
          "fixed", "metadata", "result", "key"}


@record
class WholeModule:
    """A pickled nn.Module: the classes weights_only=True must be given, or why it gets no loading code."""

    classes: tuple[tuple[str, str], ...] = ()
    """(module, qualname) of every class the file names that weights_only refuses."""
    refusal: str = ""
    """Why no loading code is offered (a blocker that is not a model class); empty when ``classes`` do."""


def predicted_verdict(inv: Inventory) -> Verdict:
    """The weights_only verdict with torch's own allowlist only (not the user's trusted globals):
    a snippet runs in a fresh interpreter."""
    from ..safety.allowlist import allowed_globals, installed_torch_version
    from ..safety.weights_only import predict

    return predict(inv, allowed_globals(), installed_torch_version())


def whole_module(inv: Inventory, verdict: Verdict) -> WholeModule:
    """Allowlist the file's classes only when every weights_only blocker is a model class (a global
    weights_only refuses, category ``model``): torch then only rebuilds those classes (their
    ``__new__`` / ``__setstate__``), it calls nothing the file chose. Anything else (a dangerous or
    unknown global, an opcode, a format problem) gets no loading code at all."""
    refs = {g.qualname: (g.module, g.name) for g in inv.globals}
    out: list[tuple[str, str]] = []
    for b in verdict.blocking:
        ref = refs.get(b.detail) if b.kind == "global" else None
        if b.category != "model" or ref is None or not all(_DOTTED.fullmatch(p) for p in ref):
            what = b.category if b.kind == "global" and b.category not in (None, "model") else b.kind
            return WholeModule((), f"the file also needs {b.detail[:200]!r} ({what}), which is not a model "
                                   "class: loading it runs or may run code the file chose")
        if ref not in out:
            out.append(ref)
    if not out:
        return WholeModule((), "no model class to allowlist was found for it")
    unsafe = _called_classes(inv, {f"{m}.{q}" for m, q in out})
    if unsafe:
        return WholeModule((), f"the file calls {unsafe!r} (not only rebuilds it): an allowlisted class would "
                               "then run its constructor with arguments the file chose")
    return WholeModule(tuple(out))


# Calls that run a class's code with the file's arguments once the class is allowlisted: REDUCE/INST/OBJ/NEWOBJ_EX
# call it (torch's weights_only REDUCE calls allowlisted globals), copyreg._reconstructor runs base.__init__.
_CALLING = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ_EX"})


def _called_classes(inv: Inventory, classes: set[str]) -> str | None:
    """The first class (of those the snippet would allowlist) the file calls rather than rebuilds with
    NEWOBJ + BUILD (what torch.save writes for an nn.Module), or one from the standard library."""
    from ..safety.classify import is_stdlib_module

    for name in sorted(classes):
        if is_stdlib_module(name.rsplit(".", 1)[0]):
            return name
    for op in inv.operations:
        target = op.target.removeprefix("global:")
        if op.opcode in _CALLING and (target in classes or target == "copyreg._reconstructor"):
            return target
    return None


def _imports(classes: tuple[tuple[str, str], ...], taken: set[str]) -> tuple[list[str], list[str]]:
    """``from module import Name`` lines (aliased when a name is taken) and the names to allowlist."""
    lines: list[str] = []
    names: list[str] = []
    used = set(taken)
    for module, qualname in classes:
        head, _, rest = qualname.partition(".")
        alias, n = head, 2
        while alias in used:
            alias, n = f"{head}_{n}", n + 1
        used.add(alias)
        lines.append(f"from {module} import {head}" + (f" as {alias}" if alias != head else ""))
        names.append(alias + ("." + rest if rest else ""))
    return lines, names


def _access(path: tuple[Any, ...]) -> str:
    """``['state'][5]``: the path's keys as the checkpoint holds them (ints stay ints)."""
    return "".join(f"[{p!r}]" for p in path)


def make_snippet(ckpt_path: str, target: str, kwargs: dict[str, Any], sd_path: tuple[Any, ...],
                 fix: Fix | None, *, module_object: WholeModule | None = None) -> str:
    """``module_object``: the state_dict is a pickled nn.Module's, which ``weights_only=True`` refuses
    until its model classes are allowlisted (``whole_module``)."""
    module, _, attr = target.partition(":")
    head = attr.split(".")[0]
    if module_object is not None and module_object.refusal:
        return "\n".join([
            "# This file pickles a whole nn.Module, and weights_only loading refuses it for more than its",
            "# model classes. Loading it any other way (weights_only=False, pickle) runs code the file",
            "# chose, so ckptlint gives no loading code. Ask for the state_dict saved as safetensors",
            "# (or as a plain state_dict file) instead.",
            f"raise SystemExit({('ckptlint: not loading ' + ckpt_path + ': ' + module_object.refusal)!r})",
        ]) + "\n"
    lines = [
        "import collections",
        "import re",
        "",
        "import torch",
        f"from {module} import {head}",
        "",
        f"model = {attr}(**{kwargs!r})" if kwargs else f"model = {attr}()",
    ]
    if module_object is not None:
        imports, names = _imports(module_object.classes, _TAKEN | {head})
        lines[5:5] = imports
        lines += [
            "# This file pickles a whole nn.Module: weights_only=True loads it once its model classes",
            "# (below, imported from your own installed code) are allowlisted; torch then only rebuilds",
            "# those classes and calls nothing the file names. Re-save the state_dict",
            "# (torch.save(state_dict, 'weights.pt')) so later loads need no allowlist.",
            f"with torch.serialization.safe_globals([{', '.join(names)}]):",
            f"    checkpoint = torch.load({ckpt_path!r}, map_location=\"cpu\", weights_only=True)",
            f"state_dict = checkpoint{_access(sd_path)}.state_dict()",
        ]
    else:
        lines += [
            f"checkpoint = torch.load({ckpt_path!r}, map_location=\"cpu\", weights_only=True)",
            f"state_dict = checkpoint{_access(sd_path)}",
        ]
    if fix is None:
        lines.append("model.load_state_dict(state_dict, strict=True)")
        return "\n".join(lines) + "\n"
    lines += [
        f"renames = {[tuple(r) for r in fix.renames]!r}",
        ("drop = {" + ", ".join(repr(k) for k in sorted(fix.drop)) + "}") if fix.drop else "drop = set()",
        "",
        "def rename(key):",
        "    for pattern, replacement in renames:",
        "        key = re.sub(pattern, replacement, key)",
        "    return key",
        "",
        "fixed = collections.OrderedDict(",
        "    (rename(k), v) for k, v in state_dict.items() if rename(k) not in drop)",
    ]
    if fix.transpose:
        lines += [
            "# stored transposed (Conv1D-style [in, out]): the model's Linear wants [out, in]",
            "for key in " + repr(sorted(fix.transpose)) + ":",
            "    fixed[key] = fixed[key].t()",
        ]
    lines += [
        "metadata = getattr(state_dict, \"_metadata\", None)",
        "if metadata is not None:",
        "    fixed._metadata = {rename(k + \".\")[:-1]: v for k, v in metadata.items()}",
    ]
    if fix.strict:
        lines.append("model.load_state_dict(fixed, strict=True)")
    else:
        lines.append("result = model.load_state_dict(fixed, strict=False)")
        lines.append(f"# left at their initial values ({len(fix.random_init)}): {fix.random_init!r}")
    if fix.backfilled:
        lines.append(f"# left at their initial value 0 by BatchNorm itself (no module version in the file) "
                     f"({len(fix.backfilled)}): {fix.backfilled!r}")
    return "\n".join(lines) + "\n"
