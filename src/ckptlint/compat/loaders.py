"""How to open each readable format in a snippet, where ``torch.load`` is the wrong call.

safetensors files and shard indexes are read with safetensors (torch.load cannot open them),
TorchScript archives with ``torch.jit.load``, ``.pt2`` archives with ``torch.export.load``, and
a DCP folder is converted with DCP's own ``dcp_to_torch_save`` first.
"""

from __future__ import annotations

import os

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
            "# DCP reads the folder's .metadata with pickle.load: only for a folder you trust",
            "converted = os.path.join(tempfile.mkdtemp(), \"checkpoint.pt\")",
            f"dcp_to_torch_save({os.fspath(path)!r}, converted)",
            "checkpoint = torch.load(converted, map_location=\"cpu\", weights_only=True)",
        ]
    return None


def with_loader(snippet: str, fmt: str, path: str, shard_names: tuple[str, ...] = ()) -> str:
    """``snippet`` with its ``torch.load`` line replaced by the format's own loader."""
    lines = loader_lines(fmt, path, shard_names)
    if lines is None:
        return snippet
    out = snippet.splitlines()
    at = next((i for i, line in enumerate(out) if line.startswith(TORCH_LOAD)), None)
    if at is None:
        return snippet
    return "\n".join(out[:at] + lines + out[at + 1:]) + "\n"
