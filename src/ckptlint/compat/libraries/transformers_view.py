"""transformers' ``from_pretrained``, mirrored on key names and shapes (transformers 5.x).

The steps are those of ``convert_and_load_state_dict_in_model`` (modeling_utils / core_model_loading):
each checkpoint key goes through the model's weight renamings (``get_model_conversion_mapping``: legacy
``LayerNorm.gamma``…) and ``rename_source_key``'s base-model prefix rule (added or removed when the result
is a model key); a key the model lacks is unexpected, a wrong shape is mismatched (``from_pretrained``
raises unless ``ignore_mismatched_sizes=True``); then ``tie_weights`` fills a missing tied key from its
partner (either direction), and ``_adjust_missing_and_unexpected_keys`` drops keys matching the class's
``_keys_to_ignore_on_load_missing/unexpected`` (and ``rotary_emb.inv_freq`` / ``position_ids``).
transformers' own key functions are called; no tensor is read.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from ...inventory import Inventory
from ...targets.signature import Signature
from ..compare import CompatResult
from ..fixes import Fix
from ..unwrap import NonTensor, StateDict
from .view import LibraryView, listing

STANDARD_NAMES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                  "pytorch_model.bin.index.json")


def is_pretrained_model(model: Any) -> bool:
    if model is None or "transformers" not in sys.modules:
        return False
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def view(inv: Inventory, sig: Signature, sd: StateDict, result: CompatResult, model: Any,
         run: Callable[[StateDict], CompatResult]) -> LibraryView | None:
    if not is_pretrained_model(model):
        return None
    return from_pretrained_view(model, sd, result, inv.path, sig)


def from_pretrained_view(model: Any, sd: StateDict, result: CompatResult, path: str,
                         sig: Signature) -> LibraryView:
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import (
        WeightConverter,
        WeightRenaming,
        dot_natural_key,
        rename_source_key,
    )

    mapping = get_model_conversion_mapping(model)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    meta = model.state_dict()
    prefix = model.base_model_prefix
    cls = type(model).__name__
    missing = set(meta)
    unexpected: set[str] = set()
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    loaded_from: dict[str, str] = {}
    notes: list[str] = []
    non_tensor: list[str] = []
    for key in sorted(sd.entries, key=dot_natural_key):
        new, pattern = rename_source_key(key, renamings, converters, prefix, meta)
        if new not in meta and key in meta:
            new, pattern = rename_source_key(key, [], [], base_model_prefix=prefix, meta_state_dict=meta)
        value = sd.entries[key]
        if new in meta:
            missing.discard(new)
            loaded_from[new] = key
            if pattern is not None and pattern != key and any(pattern in c.source_patterns for c in converters):
                notes.append(f"{key}: converted by transformers' weight converter for {new} (shapes not checked)")
                continue
            if isinstance(value, NonTensor):
                non_tensor.append(new)
                continue
            want = tuple(meta[new].shape)
            if tuple(value.shape) != want:
                mismatched[new] = (tuple(value.shape), want)
        elif pattern is not None and any(pattern in c.source_patterns for c in converters):
            conv = next(c for c in converters if pattern in c.source_patterns)
            unexpected.update(new.replace(conv.target_patterns[0], t) for t in conv.target_patterns)
        else:
            unexpected.add(new)
    tied = _tie(model, missing, sd, loaded_from)
    ignored_missing, ignored_unexpected = _ignore_lists(model, missing, unexpected)
    missing -= set(ignored_missing)
    unexpected -= set(ignored_unexpected)
    ignored: list[str] = []
    renamed = sorted((old, new) for new, old in loaded_from.items() if old != new)
    with_prefix = [(o, n) for o, n in renamed if n == f"{prefix}.{o}" or o == f"{prefix}.{n}"]
    if with_prefix:
        added = with_prefix[0][1].startswith(prefix + ".")
        ignored.append(f"base-model prefix {prefix + '.'!r} {'added to' if added else 'removed from'} "
                       f"{len(with_prefix)} checkpoint key{'s' if len(with_prefix) != 1 else ''} "
                       f"(e.g. {with_prefix[0][0]} -> {with_prefix[0][1]})")
    others = [(o, n) for o, n in renamed if (o, n) not in with_prefix]
    if others:
        ignored.append(f"renamed by {cls}'s weight conversions ({len(others)}): "
                       + listing([f"{o} -> {n}" for o, n in others], 4))
    for target, source in tied:
        ignored.append(f"{target} is tied to {source} and filled through the tie")
    if ignored_missing:
        ignored.append(f"missing, ignored without a word (_keys_to_ignore_on_load_missing): {listing(ignored_missing)}")
    if ignored_unexpected:
        ignored.append("unexpected, ignored without a word (the class's _keys_to_ignore_on_load_unexpected, "
                       f"old rotary inv_freq / position_ids buffers): {listing(ignored_unexpected)}")
    loads = not mismatched and not non_tensor
    if mismatched:
        notes.append(f"from_pretrained raises for {len(mismatched)} shape mismatch"
                     f"{'es' if len(mismatched) != 1 else ''} ({listing(sorted(mismatched), 3)}) unless given "
                     "ignore_mismatched_sizes=True, which leaves them initialised (a resized head)")
    if non_tensor:
        notes.append(f"non-tensor values under model keys: {listing(non_tensor, 3)}")
    unexp_from_torch = set(result.unexpected)
    explained_unexpected = tuple(k for k in unexp_from_torch
                                 if k in loaded_from.values() or k in ignored_unexpected)
    explained_missing = tuple(k for k in result.missing if k not in missing)
    snippet = _snippet(model, path, sd, sig, bool(mismatched))
    fix = None if result.strict_ok or non_tensor else Fix(
        random_init=sorted(missing | set(mismatched)), strict=False,
        diagnosis=[f"load it with {cls}.from_pretrained, which maps and ties these keys itself", *ignored,
                   *notes], snippet=snippet)
    return LibraryView(
        "transformers", f"{cls}.from_pretrained", loads, tuple(sorted(missing)), tuple(sorted(unexpected)),
        mismatched, tuple(ignored), notes, snippet, no_generic_fix=True,
        explained_missing=explained_missing, explained_unexpected=explained_unexpected, fix=fix)


def _tie(model: Any, missing: set[str], sd: StateDict, loaded_from: dict[str, str]) -> list[tuple[str, str]]:
    """``tie_weights(missing_keys=...)`` during from_pretrained: symmetric, with backups for 3+ ties."""
    tied_keys = list(getattr(model, "all_tied_weights_keys", {}).items())
    out = []
    for i, (target, source) in enumerate(tied_keys):
        source_there, target_there = source not in missing, target not in missing
        if source_there and target_there:
            continue  # both loaded: nothing is missing (transformers ties them only when the values are equal)
        if not source_there and target_there:
            target, source = source, target
        elif not source_there and not target_there:
            for backup_target, backup_source in tied_keys[i + 1:]:
                if backup_source == source and backup_target not in missing:
                    source = backup_target
                    break
            else:
                continue  # both absent: stays missing
        if target in missing:
            missing.discard(target)
            out.append((target, source))
    return out


def _ignore_lists(model: Any, missing: set[str], unexpected: set[str]) -> tuple[list[str], list[str]]:
    """``_adjust_missing_and_unexpected_keys``: the class's patterns, searched anywhere in the key."""
    buffers = [name for name, _ in model.named_buffers()]
    extra = {r"rotary_emb\.inv_freq"} if any(b.endswith("rotary_emb.inv_freq") for b in buffers) else set()
    if any(b.endswith("position_ids") for b in buffers):
        extra.add(r"(^|\.)position_ids$")
    miss_patterns = set(model._keys_to_ignore_on_load_missing or ())
    unexp_patterns = set(model._keys_to_ignore_on_load_unexpected or ()) | extra

    def matching(keys: set[str], patterns: set[str]) -> list[str]:
        if not patterns:
            return []
        rx = re.compile("|".join(f"({p})" for p in patterns))
        return sorted(k for k in keys if rx.search(k) is not None)

    return matching(missing, miss_patterns), matching(unexpected, unexp_patterns)


def config_source(sig: Signature) -> str | None:
    config = sig.kwargs.get("config")
    return config if isinstance(config, str) else None


def _snippet(model: Any, path: str, sd: StateDict, sig: Signature, mismatched: bool) -> str:
    """``from_pretrained`` on the checkpoint's folder when it has a standard name, else on a state_dict."""
    cls = type(model).__name__
    config = config_source(sig) or os.path.dirname(path) or "."
    overrides = {k: v for k, v in sig.kwargs.items() if k != "config"}
    extra = ", ignore_mismatched_sizes=True" if mismatched else ""
    lines = [f"from transformers import AutoConfig, {cls}", "",
             f"config = AutoConfig.from_pretrained({config!r}" + "".join(f", {k}={v!r}" for k, v in overrides.items())
             + ")"]
    if os.path.isdir(path) or (os.path.basename(path) in STANDARD_NAMES and not sd.path):
        folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
        lines.append(f"model = {cls}.from_pretrained({folder!r}, config=config{extra})")
        return "\n".join(lines) + "\n"
    if path.endswith(".safetensors"):
        lines[1:1] = ["from safetensors.torch import load_file"]
        lines.append(f"state_dict = load_file({path!r})")
    else:
        access = "".join(f"[{p!r}]" for p in sd.path)
        lines[1:1] = ["import torch"]
        lines.append(f"state_dict = torch.load({path!r}, map_location=\"cpu\", weights_only=True){access}")
    lines.append(f"model = {cls}.from_pretrained(None, config=config, state_dict=state_dict{extra})")
    return "\n".join(lines) + "\n"
