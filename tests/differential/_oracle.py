"""torch as the oracle: walk what torch loaded and compare it with ckptlint's inventory.

The walk uses the collector's path conventions (src/ckptlint/formats/collect.py):
dict keys as they are (non-scalar keys are not expected here), list/tuple
indices, an object's ``__dict__`` entries for pickled objects (nn.Module), and
each container visited once, so a container reached twice contributes its
tensors only under the first path — exactly as the pickle memo shares it.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

import ckptlint
from ckptlint.inventory import Inventory, KeyPath, TensorRecord


def walk(obj: Any) -> dict[KeyPath, torch.Tensor]:
    """Every tensor in a torch-loaded object tree, by ckptlint key path."""
    found: dict[KeyPath, torch.Tensor] = {}
    seen: set[int] = set()

    def visit(o: Any, path: KeyPath) -> None:
        if isinstance(o, torch.Tensor):
            found[path] = o
            return
        if isinstance(o, (str, bytes, int, float, bool, type(None))):
            return
        if id(o) in seen:
            return
        if isinstance(o, dict):
            seen.add(id(o))
            for k, v in o.items():
                assert k is None or isinstance(k, (str, int, float, bool)), f"unexpected key {k!r} at {path}"
                visit(v, path + (k,))
        elif isinstance(o, (list, tuple)):
            seen.add(id(o))
            for i, v in enumerate(o):
                visit(v, path + (i,))
        elif isinstance(o, torch.nn.Module):
            # Pickled by reduce protocol 2: NEWOBJ + BUILD with the instance dict.
            seen.add(id(o))
            for k, v in vars(o).items():
                visit(v, path + (k,))

    visit(obj, ())
    return found


def storage_id(t: torch.Tensor) -> int:
    """Identity of the storage a tensor lives in (the StorageImpl, also for empty storages)."""
    return t.untyped_storage()._cdata


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def partition(groups: dict[Any, Any]) -> set[frozenset[Any]]:
    out: dict[Any, set[Any]] = {}
    for path, key in groups.items():
        out.setdefault(key, set()).add(path)
    return {frozenset(v) for v in out.values()}


def inventory_by_path(inv: Inventory, *, ignore_roots: tuple[Any, ...] = ()) -> dict[KeyPath, TensorRecord]:
    recs: dict[KeyPath, TensorRecord] = {}
    for t in inv.tensors:
        if t.path and t.path[0] in ignore_roots:
            continue
        assert t.path not in recs, f"ckptlint reports {t.path} twice"
        recs[t.path] = t
    return recs


def assert_inventory_matches(inv: Inventory, expected: dict[KeyPath, torch.Tensor], *,
                             device: str | None = None, check_parameter: bool = True,
                             check_requires_grad: bool = True,
                             ignore_roots: tuple[Any, ...] = ()) -> dict[KeyPath, TensorRecord]:
    """ckptlint's tensors equal torch's: paths, metadata, storage bytes and sharing.

    ``device`` overrides the expected device (files loaded with ``map_location``).
    Returns ckptlint's records by path for further checks.
    """
    recs = inventory_by_path(inv, ignore_roots=ignore_roots)
    assert set(recs) == set(expected), (
        f"only ckptlint: {sorted(map(str, set(recs) - set(expected)))[:10]}; "
        f"only torch: {sorted(map(str, set(expected) - set(recs)))[:10]}")
    problems = []
    for path, t in expected.items():
        r = recs[path]
        want = {
            "dtype": dtype_name(t.dtype),
            "shape": tuple(t.shape),
            "stride": tuple(t.stride()),
            "storage_offset": t.storage_offset(),
            "storage_bytes": t.untyped_storage().nbytes(),
            "device": device if device is not None else str(t.device),
            "layout": "strided",
        }
        if check_parameter:
            want["is_parameter"] = isinstance(t, torch.nn.Parameter)
        if check_requires_grad:
            want["requires_grad"] = t.requires_grad
        got = {k: getattr(r, k) for k in want}
        if got != want:
            problems.append(f"{path}: ckptlint {got} != torch {want}")
    assert not problems, "\n".join(problems[:20])
    torch_groups = partition({p: storage_id(t) for p, t in expected.items()})
    ckpt_groups = partition({p: recs[p].storage_key for p in expected})
    assert ckpt_groups == torch_groups
    # A storage key names one storage: its declared size is the same at every use.
    sizes: dict[Any, set[Any]] = {}
    for p in expected:
        sizes.setdefault(recs[p].storage_key, set()).add(recs[p].storage_bytes)
    assert all(len(v) == 1 for v in sizes.values())
    return recs


def load_own_file(path: Any, **kwargs: Any) -> Any:
    """torch.load a file this test wrote: weights_only where torch allows it.

    torch's weights_only unpickler refuses some files it writes itself (pickle
    protocol 4/5 opcodes, whole nn.Module pickles); for those, and only because
    the test produced the file a moment ago, fall back to a trusted full load.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, **kwargs)
    except Exception:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError variants
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=False, **kwargs)


def check_file(path: Any, *, map_location: str | None = None, device: str | None = None,
               **kwargs: Any) -> tuple[Inventory, Any, dict[KeyPath, TensorRecord]]:
    """inspect + real load + full comparison; returns (inventory, loaded object, records)."""
    inv = ckptlint.inspect(path)
    loaded = load_own_file(path, map_location=map_location) if map_location else load_own_file(path)
    recs = assert_inventory_matches(inv, walk(loaded), device=device, **kwargs)
    return inv, loaded, recs


def plain_metadata(md: Any) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in md.items()}
