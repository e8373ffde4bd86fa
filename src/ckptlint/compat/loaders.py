"""How to open each readable format in a snippet, where ``torch.load`` is the wrong call.

safetensors files and shard indexes are read with safetensors (torch.load cannot open them),
TorchScript archives with ``torch.jit.load``, ``.pt2`` archives with ``torch.export.load``, and
a DCP folder is converted with DCP's own ``dcp_to_torch_save`` first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..inventory import Inventory
from ..safety.torchscript_ops import judge

TORCH_LOAD = "checkpoint = torch.load("


def loader_lines(fmt: str, path: str, shard_names: tuple[str, ...] = ()) -> list[str] | None:
    """Lines that bind ``checkpoint`` for a file of format ``fmt``; None where torch.load is right."""
    if fmt == "safetensors":
        return ["from safetensors.torch import load_file", "", f"checkpoint = load_file({path!r})"]
    if fmt == "sharded-index":
        st = all(n.endswith(".safetensors") for n in shard_names) if shard_names else path.endswith(
            ".safetensors.index.json")
        read = "load_file(shard_path)" if st else 'torch.load(shard_path, map_location="cpu", weights_only=True)'
        return [
            "import json",
            "import os",
            *(["from safetensors.torch import load_file"] if st else []),
            "",
            f"index_path = {path!r}",
            "with open(index_path) as index_file:",
            "    shards = sorted(set(json.load(index_file)[\"weight_map\"].values()))",
            "checkpoint = {}",
            "for shard in shards:  # every shard the index names, from the index's folder",
            "    shard_path = os.path.join(os.path.dirname(index_path), shard)",
            f"    checkpoint.update({read})",
        ]
    if fmt == "torchscript":
        return [f"checkpoint = torch.jit.load({path!r}, map_location=\"cpu\").state_dict()"]
    if fmt == "torch-export":
        return [f"checkpoint = torch.export.load({path!r}).state_dict"]
    if fmt == "dcp":
        return [
            "import os",
            "import tempfile",
            "",
            "from torch.distributed.checkpoint.format_utils import dcp_to_torch_save",
            "",
            "# DCP reads the folder's .metadata with pickle.load; ckptlint found only plain data classes",
            "# and globals torch's weights_only allows in it, so reading it builds those and calls nothing else",
            "converted = os.path.join(tempfile.mkdtemp(), \"checkpoint.pt\")",
            f"dcp_to_torch_save({os.fspath(path)!r}, converted)",
            "checkpoint = torch.load(converted, map_location=\"cpu\", weights_only=True)",
        ]
    return None


def dcp_refusal(categories: Mapping[str, str]) -> str:
    """Why a DCP folder gets no loading code: its ``.metadata`` (read with ``pickle.load``) names a
    global that is not plain data or allowed by weights_only; empty when every one is."""
    bad = sorted(q for q, c in categories.items() if c not in ("allowed", "data"))
    if not bad:
        return ""
    return (f"its .metadata, which DCP reads with pickle.load, names {bad[0][:200]!r} "
            f"({categories[bad[0]]}): reading it runs or may run code the folder chose")


def torchscript_refusal(inv: Inventory) -> str:
    """Why a TorchScript archive gets no ``torch.jit.load`` code: code ckptlint cannot read, or code that
    runs at load and touches files, processes or the network (CK108's judgement); empty otherwise."""
    code = inv.facts.extra.get("torchscript_code")
    if not isinstance(code, dict):
        return "ckptlint could not analyse the code torch.jit.load would compile and run"
    unreadable = code.get("unreadable") or []
    if unreadable:
        return f"its code cannot be read statically ({str(unreadable[0])[:200]}), and torch.jit.load runs it"
    for op in code.get("operations", []):
        verdict = judge(str(op.get("op", ""))) if op.get("at_load") else None
        if verdict is not None:
            return f"its code runs {op['op']} at load ({verdict[0]}: {verdict[1]})"
    for g in inv.globals:
        if g.module.startswith("__torch__.torch.classes."):
            verdict = judge(g.qualname.removeprefix("__torch__."))
            if verdict is not None:
                return f"it builds {g.qualname} objects at load ({verdict[0]}: {verdict[1]})"
    return ""


_REFUSED = {
    "dcp": ["# DCP reads this folder's .metadata with pickle.load, and it names more than plain data:",
            "# reading it runs code the folder chose, so ckptlint gives no loading code. Ask for the",
            "# state_dict saved as safetensors (or as a plain state_dict file) instead."],
    "torchscript": ["# torch.jit.load compiles this archive's code and runs its __setstate__ and defaults at",
                    "# load: ckptlint found code there it cannot vouch for (CK108), so it gives no loading",
                    "# code. Ask for the state_dict saved as safetensors (or as a plain state_dict file)."],
}


def with_loader(snippet: str, fmt: str, path: str, shard_names: tuple[str, ...] = (),
                refusal: str = "") -> str:
    """``snippet`` with its ``torch.load`` line replaced by the format's own loader; with a
    ``refusal`` (``dcp_refusal``, ``torchscript_refusal``) the snippet is only the reason and a SystemExit."""
    if fmt in _REFUSED and refusal:
        return "\n".join([
            *_REFUSED[fmt],
            f"raise SystemExit({('ckptlint: not loading ' + os.fspath(path) + ': ' + refusal)!r})",
        ]) + "\n"
    lines = loader_lines(fmt, path, shard_names)
    if lines is None:
        return snippet
    out = snippet.splitlines()
    at = next((i for i, line in enumerate(out) if line.startswith(TORCH_LOAD)), None)
    if at is None:
        return snippet
    return "\n".join(out[:at] + lines + out[at + 1:]) + "\n"
