"""A target's signature: what ``load_state_dict`` expects, per module, as plain data.

Built from a live model (on torch's ``meta`` device: no memory, no init cost),
or read from a snapshot JSON so that later checks need no torch at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from ..filenames import special_kind
from ..record import field, record
from .spec import TargetError, TargetSpec

SNAPSHOT_VERSION = 1


@record
class TensorSig:
    """One expected tensor: shape, dtype, and whether a parameter or buffer."""

    shape: tuple[int, ...]
    dtype: str
    kind: str
    """``parameter`` or ``buffer`` (persistent buffers only: others are not expected)."""
    lazy: bool = False
    """Uninitialised (``LazyLinear`` before its first forward): no shape yet; torch's lazy load hook
    materialises it with the checkpoint's shape, so any shape loads."""


@record
class ModuleSig:
    """One module as ``load_state_dict`` visits it (shared modules appear at each path)."""

    prefix: str
    cls: str
    version: int | None
    children: tuple[str, ...]
    """Child names, in order, including children registered as None."""
    none_children: tuple[str, ...]
    local: dict[str, TensorSig]
    """Parameters and persistent buffers that are not None, in torch's order."""
    extra_state: bool = False
    load_rule: str | None = None
    """``batchnorm`` (fills a missing num_batches_tracked for old checkpoints),
    ``frozen_batchnorm`` (drops num_batches_tracked), ``custom`` (own load logic or hooks
    that a snapshot cannot replay), or None."""
    unversioned_error: str | None = None
    """For ``custom`` modules: the exception their own load code raises, on their own state, when the
    state_dict's ``_metadata`` gives them no version (and does not raise with their class version):
    MNASNet's ``ValueError``. Lets a snapshot predict it."""


@record
class Signature:
    """Everything a target model expects of a state_dict (what a snapshot stores)."""

    target: str
    kwargs: dict[str, Any]
    modules: tuple[ModuleSig, ...]
    torch_version: str = ""
    built_on: str = "meta"
    notes: tuple[str, ...] = ()
    shared: dict[str, str] = field(default_factory=dict)
    """Tied weights: key -> the first key holding the same tensor."""

    def expected(self) -> dict[str, TensorSig]:
        out: dict[str, TensorSig] = {}
        for m in self.modules:
            p = m.prefix + "." if m.prefix else ""
            for name, t in m.local.items():
                out[p + name] = t
        return out

    def module_at(self) -> dict[str, ModuleSig]:
        return {m.prefix: m for m in self.modules}

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict  # records are dataclasses to this module (ckptlint.record)

        return {
            "snapshot_version": SNAPSHOT_VERSION,
            "target": self.target,
            "kwargs": self.kwargs,
            "torch_version": self.torch_version,
            "built_on": self.built_on,
            "notes": list(self.notes),
            "shared": self.shared,
            "modules": [
                {**asdict(m), "children": list(m.children), "none_children": list(m.none_children),
                 "local": {k: {"shape": list(t.shape), "dtype": t.dtype, "kind": t.kind,
                               **({"lazy": True} if t.lazy else {})} for k, t in m.local.items()}}
                for m in self.modules
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        if not isinstance(data, dict) or data.get("snapshot_version") != SNAPSHOT_VERSION:
            raise TargetError("not a ckptlint snapshot (snapshot_version 1)")
        try:
            modules = tuple(
                ModuleSig(
                    prefix=m["prefix"], cls=m["cls"], version=m.get("version"),
                    children=tuple(m["children"]), none_children=tuple(m.get("none_children", ())),
                    local={k: TensorSig(tuple(t["shape"]), t["dtype"], t["kind"], bool(t.get("lazy", False)))
                           for k, t in m["local"].items()},
                    extra_state=bool(m.get("extra_state", False)), load_rule=m.get("load_rule"),
                    unversioned_error=m.get("unversioned_error"),
                )
                for m in data["modules"]
            )
            return cls(data["target"], dict(data.get("kwargs", {})), modules, data.get("torch_version", ""),
                       data.get("built_on", "meta"), tuple(data.get("notes", ())), dict(data.get("shared", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise TargetError(f"malformed snapshot ({type(e).__name__}: {e})") from None


def load_snapshot(path: str) -> Signature:
    what = special_kind(path)
    if what is not None:  # a FIFO would block the open, /dev/zero never ends
        raise TargetError(f"snapshot {path}: not a regular file ({what}): give the file `ckptlint snapshot` wrote")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise TargetError(f"snapshot {path}: {e}") from None
    return Signature.from_json(data)


def build_model(spec: TargetSpec) -> tuple[Any, str, list[str], str]:
    """Instantiate the target on the meta device (CPU if it refuses meta). Imports torch.

    Returns the model, where it was built, notes, and the canonical spec text."""
    import torch

    factory, module = spec.resolve_with_module()
    notes: list[str] = []
    try:
        with torch.device("meta"), _skip_init(torch):
            model = factory(**spec.kwargs)
        where = "meta"
    except Exception as e:  # noqa: BLE001 - any failure of user code on meta: retry on CPU
        notes.append(f"{spec.text} could not be built on the meta device ({type(e).__name__}: {e}); built on CPU")
        try:
            model = factory(**spec.kwargs)
        except Exception as e2:  # noqa: BLE001
            raise TargetError(f"target {spec.text}: building it failed: {type(e2).__name__}: {e2}") from None
        where = "cpu"
    if not isinstance(model, torch.nn.Module):
        raise TargetError(f"target {spec.text} did not return an nn.Module (got {type(model).__name__})")
    return model, where, notes, f"{module}:{spec.attr}"


@contextlib.contextmanager
def _skip_init(torch: Any) -> Iterator[None]:
    """No weight initialisation while building on meta: values do not exist there, and a meta
    ``normal_`` goes through torch's reference implementation, whose first use imports
    torch._dynamo (over a second and ~150 MB). Shapes, dtypes and structure are unaffected."""
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}

    def skip(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    try:
        for n in names:
            setattr(init, n, skip)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def signature_of(model: Any, target: str, kwargs: dict[str, Any] | None = None,
                 built_on: str = "meta", notes: list[str] | None = None) -> Signature:
    """Read a live module's signature (the walk ``load_state_dict`` does)."""
    import torch
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.parameter import is_lazy

    base_load = torch.nn.Module._load_from_state_dict
    bn_load = _NormBase._load_from_state_dict
    base_extra = torch.nn.Module.set_extra_state
    modules: list[ModuleSig] = []
    seen_tensors: dict[int, str] = {}
    shared: dict[str, str] = {}

    def walk(mod: Any, prefix: str, depth: int) -> None:
        if depth > 1000:
            raise TargetError(f"target {target}: module tree deeper than 1000")
        persistent = {k: v for k, v in mod._buffers.items() if k not in mod._non_persistent_buffers_set}
        local: dict[str, TensorSig] = {}
        for kind, items in (("parameter", mod._parameters.items()), ("buffer", persistent.items())):
            for name, t in items:
                if t is None:
                    continue
                lazy = is_lazy(t)
                local[name] = TensorSig(() if lazy else tuple(t.shape), str(t.dtype).removeprefix("torch."),
                                        kind, lazy)
                key = f"{prefix}.{name}" if prefix else name
                first = seen_tensors.setdefault(id(t), key)
                if first != key:
                    shared[key] = first
        cls = type(mod)
        load = cls._load_from_state_dict
        rule = None
        if cls.__name__ == "FrozenBatchNorm2d" and cls.__module__.startswith("torchvision"):
            rule = "frozen_batchnorm"
        elif load is bn_load:
            rule = "batchnorm" if getattr(mod, "track_running_stats", False) else None
        elif load is not base_load:
            rule = "custom"
        if mod._load_state_dict_pre_hooks or mod._load_state_dict_post_hooks:
            rule = "custom"
        has_extra = getattr(cls, "set_extra_state", base_extra) is not base_extra
        if has_extra:  # torch hands it the saved value: only the live class can say whether it accepts it
            rule = "custom"
        children = tuple(mod._modules)
        modules.append(ModuleSig(
            prefix=prefix, cls=f"{cls.__module__}.{cls.__qualname__}", version=getattr(cls, "_version", None),
            children=children, none_children=tuple(n for n, c in mod._modules.items() if c is None),
            local=local, extra_state=has_extra,
            load_rule=rule, unversioned_error=_probe_unversioned(mod) if rule == "custom" else None,
        ))
        for name, child in mod._modules.items():
            if child is not None:
                walk(child, f"{prefix}.{name}" if prefix else name, depth + 1)

    walk(model, "", 0)
    return Signature(target, dict(kwargs or {}), tuple(modules), torch.__version__, built_on,
                     tuple(notes or ()), shared)


def _probe_unversioned(mod: Any) -> str | None:
    """Run the module's own load code (on a copy) with its own state and no version, then with its
    class version: the error only the first raises is what a checkpoint without ``_metadata`` gets."""
    import copy
    import warnings

    import torch

    def attempt(version: Any) -> str | None:
        probe = copy.deepcopy(mod)
        state = dict(probe.state_dict(keep_vars=True))
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                probe._load_from_state_dict(state, "", {} if version is None else {"version": version},
                                            True, [], [], [])
        except Exception as e:  # noqa: BLE001 - the module's own load code: whatever it raises is the answer
            return f"{type(e).__name__}: {e}".splitlines()[0]
        return None

    try:
        err = attempt(None)
        return err if err is not None and attempt(getattr(type(mod), "_version", 1)) is None else None
    except Exception:  # noqa: BLE001 - a module that cannot be copied or listed: no prediction
        return None


def build_signature(spec: TargetSpec) -> tuple[Signature, Any]:
    """The live model (on meta) and its signature; the target is named by its canonical spec."""
    model, where, notes, target = build_model(spec)
    return signature_of(model, target, spec.kwargs, where, notes), model
