"""The ready-to-paste loading code for a checkpoint and a target (tests run it unchanged)."""

from __future__ import annotations

from typing import Any

from .fixes import Fix


def _access(path: tuple[Any, ...]) -> str:
    """``['state'][5]``: the path's keys as the checkpoint holds them (ints stay ints)."""
    return "".join(f"[{p!r}]" for p in path)


def make_snippet(ckpt_path: str, target: str, kwargs: dict[str, Any], sd_path: tuple[Any, ...],
                 fix: Fix | None, *, whole_module: bool = False) -> str:
    """``whole_module``: the state_dict is a pickled nn.Module's, which ``weights_only=True`` refuses."""
    module, _, attr = target.partition(":")
    head = attr.split(".")[0]
    lines = [
        "import collections",
        "import re",
        "",
        "import torch",
        f"from {module} import {head}",
        "",
        f"model = {attr}(**{kwargs!r})" if kwargs else f"model = {attr}()",
    ]
    if whole_module:
        lines += [
            "# This file pickles a whole nn.Module: torch.load(weights_only=True) refuses it, and loading it",
            "# runs code the file names. Only for a file you trust: load it once, keep its state_dict,",
            "# and re-save that (torch.save(state_dict, 'weights.pt')) so later loads can use weights_only=True.",
            f"checkpoint = torch.load({ckpt_path!r}, map_location=\"cpu\", weights_only=False)  # trusted files only",
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
    return "\n".join(lines) + "\n"
