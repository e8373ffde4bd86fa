"""Run torch's own ``load_state_dict`` logic on a meta model with meta stand-in tensors.

Used for targets whose modules have their own ``_load_from_state_dict`` or load
hooks, which a snapshot cannot replay. The recursion is torch's ``load``
closure, calling each module's real ``_load_from_state_dict`` and post hooks,
so that the missing/unexpected lists and size errors are collected instead of
raised. Only the target's code runs here — never anything from the checkpoint.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from typing import Any

from .compare import META, CompatResult
from .plain import Opaque, rebuild
from .training import live_value
from .unwrap import NonTensor, StateDict

_SIZE = re.compile(r"^size mismatch for (.+?): copying a param with shape torch\.Size\(\[([0-9, ]*)\]\) "
                   r"from checkpoint, the shape in current model is torch\.Size\(\[([0-9, ]*)\]\)\.$")
_NON_TENSOR = re.compile(r'^While copying the parameter named "(.+?)", expected torch.Tensor')


def compare_live(model: Any, sd: StateDict) -> CompatResult:
    import copy

    import torch
    from torch.nn.parameter import is_lazy

    # Custom load logic may rebuild submodules (MNASNet < v2 swaps its stem): load into a copy so the
    # target (cached, reused for the fix's re-checks) keeps its own layout. Meta: the copy is cheap.
    model = copy.deepcopy(model)
    params = dict(model.state_dict(keep_vars=True))
    fake: Any = OrderedDict()
    notes: list[str] = []
    extra_owners = dict(_extra_state_modules(model))
    for key, entry in sd.entries.items():
        owner = key.removesuffix("_extra_state").removesuffix(".")
        if key.endswith("_extra_state") and owner in extra_owners:
            value = _extra_value(entry, extra_owners[owner], key, notes)
            if value is not entry:
                fake[key] = value
                continue
        if isinstance(entry, NonTensor):
            fake[key] = live_value(entry, torch)  # torch.ao packed (weight, bias), dtypes
            continue
        fake[key] = _stand_in(torch, entry.shape, entry.dtype,
                              params[key].device if key in params else torch.device("meta"))
    if sd.metadata is not None:
        fake._metadata = {k: dict(v) for k, v in sd.metadata.items()}
    metadata = getattr(fake, "_metadata", None)
    missing: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []

    def load(module: Any, local: dict[str, Any], prefix: str = "") -> None:
        local_md = {} if metadata is None else metadata.get(prefix[:-1], {})
        module._load_from_state_dict(local, prefix, local_md, True, missing, unexpected, errors)
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = prefix + name + "."
                load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)}, child_prefix)
        incompatible = torch.nn.modules.module._IncompatibleKeys(missing, unexpected)
        for hook in module._load_state_dict_post_hooks.values():
            hook(module, incompatible)

    load_error = None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            load(model, OrderedDict(fake))
        except Exception as exc:  # noqa: BLE001 - the target's own load code raised: torch's load raises too
            load_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    non_tensor: dict[str, str] = {}
    for msg in errors:
        m = _SIZE.match(msg)
        if m:  # shapes as torch saw them (a pre-hook may have renamed or replaced the entry)
            got, want = (tuple(int(d) for d in g.split(",") if d.strip()) for g in m.group(2, 3))
            shape[m.group(1)] = (got, want)
            continue
        m = _NON_TENSOR.match(msg)
        if m:
            value = sd.entries.get(m.group(1))
            non_tensor[m.group(1)] = value.summary if isinstance(value, NonTensor) else "?"
            continue
        notes.append(msg.splitlines()[0])
    dtypes: dict[str, tuple[str, str]] = {}
    for key, entry in sd.entries.items():
        p = params.get(key)
        if p is None or isinstance(entry, NonTensor) or key in shape or is_lazy(p):
            continue
        if entry.device == "meta" and key not in missing:  # torch's copy_ from a meta tensor raises
            non_tensor[key] = META
            continue
        model_dtype = str(p.dtype).removeprefix("torch.")
        if entry.dtype != model_dtype and tuple(entry.shape) in (tuple(p.shape), (1,)):
            dtypes[key] = (entry.dtype, model_dtype)
    return CompatResult(tuple(missing), tuple(unexpected), shape, dtypes, non_tensor, tuple(notes), load_error)


def _stand_in(torch: Any, shape: tuple[int, ...], dtype: str, device: Any) -> Any:
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        torch_dtype = torch.float32
    try:
        return torch.empty(shape, dtype=torch_dtype, device=device)
    except (RuntimeError, TypeError):
        return torch.empty(shape, device=device)


def _extra_state_modules(model: Any) -> list[tuple[str, Any]]:
    """Modules whose class defines ``set_extra_state`` (torch calls it with the saved value)."""
    import torch

    base = torch.nn.Module.set_extra_state
    return [(name, mod) for name, mod in model.named_modules(remove_duplicate=False)
            if getattr(type(mod), "set_extra_state", base) is not base]


def _extra_value(entry: Any, module: Any, key: str, notes: list[str]) -> Any:
    """The saved ``_extra_state`` as plain data for the target's own ``set_extra_state``; when it
    cannot be rebuilt exactly (a tensor's values, an object), that module's ``set_extra_state`` is
    skipped (on the copy), ``entry`` itself comes back, and a note says so."""
    def tensor(index: int) -> Any:
        raise Opaque("a tensor")
    try:
        if not isinstance(entry, NonTensor):
            raise Opaque("a tensor")  # values are never read: a stand-in could make the class fail
        return rebuild(entry.value, tensor)
    except Opaque as e:
        module.set_extra_state = lambda state: None  # the copy only: the target keeps its own
        notes.append(f"{key} holds {e} that ckptlint does not rebuild: whether {type(module).__name__}"
                     ".set_extra_state accepts it is not checked")
        return entry
