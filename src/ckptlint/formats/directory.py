"""A folder as one checkpoint: a DCP checkpoint, or the weights file a library's folder holds.

``save_pretrained`` folders and accelerate ``save_state`` folders keep the model in
``model.safetensors`` / ``pytorch_model.bin`` (or a sharded index beside its shards); the
optimizer, scheduler and RNG files next to it are not the model and are named in a note.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import CheckpointError
from ..inventory import Inventory
from ..limits import Limits
from ..record import replace
from .dcp import is_dcp_dir, read_dcp

MODEL_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
               "pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json",
               "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "adapter_model.safetensors",
               "adapter_model.bin")
OTHER_STATE = ("optimizer.bin", "optimizer.pt", "scheduler.bin", "scheduler.pt", "sampler.bin", "scaler.pt")


def read_directory(path: str, limits: Limits, read_file: Callable[[str, Limits], Inventory]) -> Inventory:
    if is_dcp_dir(path):
        return read_dcp(path, limits)
    try:
        names = set(os.listdir(path))
    except OSError as e:
        raise CheckpointError(path, f"cannot list the directory: {e.strerror or e}", "directory") from None
    found = next((n for n in MODEL_FILES if n in names), None)
    if found is None:
        raise CheckpointError(path, "a directory with no checkpoint ckptlint reads as one (no DCP .metadata, "
                              "model.safetensors, pytorch_model.bin or their shard index): give a file", "directory")
    inv = read_file(os.path.join(path, found), limits)
    others = sorted(n for n in names if n in OTHER_STATE or n.startswith("random_states_")
                    or (n.startswith("model_") and n.endswith((".safetensors", ".bin"))))
    note = f"folder {os.path.basename(os.path.normpath(path))}: the model is {found}"
    if others:
        note += f"; {', '.join(others)} are training state, not this model (check them as files)"
    return replace(inv, notes=(*inv.notes, note))


__all__ = ["read_directory"]
