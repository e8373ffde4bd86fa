"""``load_state_dict`` semantics, replayed from a signature: no torch needed.

This mirrors ``torch.nn.Module.load_state_dict`` (torch 2.x): the recursive
``load`` over ``_modules``, each module's ``_load_from_state_dict`` key checks,
BatchNorm's num_batches_tracked back-fill for state_dicts saved before its
version 2, FrozenBatchNorm2d dropping that key, ``_extra_state``, the 0-dim /
``[1]`` exception, and non-tensor values. Modules with their own load logic or
load hooks are marked ``custom``; checking against the live class runs torch's
own code for them (``compat.live``).
"""

from __future__ import annotations

from typing import Any

from ..record import field, record
from ..targets.signature import ModuleSig, Signature
from .unwrap import NonTensor, StateDict


@record
class CompatResult:
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    """key -> (checkpoint shape, model shape)."""
    dtype_mismatch: dict[str, tuple[str, str]]
    """key -> (checkpoint dtype, model dtype): loads with a cast."""
    non_tensor: dict[str, str]
    """Expected keys whose value torch cannot copy: not a tensor, or a meta tensor (no data):
    ``While copying the parameter named ...`` raises even with strict=False."""
    notes: tuple[str, ...] = ()
    load_error: str | None = None
    """An exception the target's own load code raises (live checks only), e.g. MNASNet's
    ValueError for a state_dict without ``_metadata``: load_state_dict fails either way."""

    @property
    def strict_ok(self) -> bool:
        """``load_state_dict(sd, strict=True)`` succeeds."""
        return not (self.missing or self.unexpected or self.shape_mismatch or self.non_tensor or self.load_error)

    @property
    def nonstrict_ok(self) -> bool:
        """``strict=False`` still raises for shape mismatches and non-tensors."""
        return not (self.shape_mismatch or self.non_tensor or self.load_error)


@record(frozen=False)
class _Acc:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    dtype: dict[str, tuple[str, str]] = field(default_factory=dict)
    non_tensor: dict[str, str] = field(default_factory=dict)


def compare(sig: Signature, sd: StateDict) -> CompatResult:
    """What ``model.load_state_dict(sd)`` reports for the signature's model."""
    by_prefix = sig.module_at()
    entries: dict[str, Any] = dict(sd.entries)
    metadata = sd.metadata
    acc = _Acc()
    notes: list[str] = []
    custom = [m.prefix or "(root)" for m in sig.modules if m.load_rule == "custom"]
    if custom:
        notes.append(f"modules with their own load logic ({', '.join(custom[:3])}"
                     f"{', …' if len(custom) > 3 else ''}): a snapshot replays torch's default rules "
                     "for them; check against the live class for the exact verdict")

    errors: list[str] = []

    def load(mod: ModuleSig, local: dict[str, Any], prefix: str) -> None:
        local_md = {} if metadata is None else metadata.get(prefix[:-1], {}) or {}
        if mod.unversioned_error and local_md.get("version") is None:
            errors.append(mod.unversioned_error)  # its own load code raises here (recorded when snapshotted)
            return
        _module_load(mod, local, prefix, local_md, acc)
        for name in mod.children:
            if name in mod.none_children:
                continue
            child_prefix = prefix + name + "."
            child = by_prefix.get(child_prefix[:-1])
            if child is None:
                continue
            load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)}, child_prefix)

    root = by_prefix.get("")
    if root is not None:
        load(root, entries, "")
    if errors:
        return CompatResult((), (), {}, {}, {}, tuple(notes), errors[0])
    return CompatResult(tuple(acc.missing), tuple(acc.unexpected), acc.shape, acc.dtype, acc.non_tensor,
                        tuple(notes))


def _module_load(mod: ModuleSig, state: dict[str, Any], prefix: str, local_md: dict[str, Any],
                 acc: _Acc) -> None:
    if mod.load_rule == "batchnorm":
        version = local_md.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and key not in state and "num_batches_tracked" in mod.local:
            state[key] = _Filled()
    elif mod.load_rule == "frozen_batchnorm":
        state.pop(prefix + "num_batches_tracked", None)
    for name, want in mod.local.items():
        key = prefix + name
        if key not in state:
            acc.missing.append(key)
            continue
        got = state[key]
        if isinstance(got, _Filled):
            continue
        if isinstance(got, NonTensor):
            acc.non_tensor[key] = got.summary
            continue
        if want.lazy:  # torch's lazy hook materialises it with the checkpoint's shape and dtype
            continue
        shape = tuple(got.shape)
        if len(want.shape) == 0 and shape == (1,):
            shape = ()
        if shape != want.shape:
            acc.shape[key] = (tuple(got.shape), want.shape)
        elif got.device == "meta":
            acc.non_tensor[key] = META
        elif got.dtype != want.dtype:
            acc.dtype[key] = (got.dtype, want.dtype)
    extra = prefix + "_extra_state"
    if mod.extra_state:
        if extra not in state:
            acc.missing.append(extra)
    elif extra in state:
        acc.unexpected.append(extra)
    for key in state:
        if not key.startswith(prefix) or key == extra:
            continue
        head, dot, _ = key[len(prefix):].partition(".")
        if dot:
            if head not in mod.children:
                acc.unexpected.append(key)
        elif head not in mod.local:
            acc.unexpected.append(key)


META = "a meta tensor (no data: torch cannot copy from it)"


class _Filled:
    """The num_batches_tracked value BatchNorm puts in for old checkpoints."""
