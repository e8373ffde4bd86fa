"""A resolved target for ``check``: a signature (live or snapshot) plus what the user allows.

Spec strings are resolved by the engine through the ``ckptlint_resolve_target`` hook; this
module receives the result and never calls the plugin manager (imports point down).
"""

from __future__ import annotations

from typing import Any

from ..errors import TargetError
from ..record import record
from .signature import Signature, build_signature, load_snapshot, signature_of
from .spec import parse_spec, require_torch


@record(frozen=False)
class Target:
    """A resolved target model: its signature, and the live model when one was built."""

    signature: Signature
    model: Any = None
    """The live model (on meta) when one was built; None for snapshot-only checks."""
    key: tuple[Any, ...] | None = None
    allow_missing: tuple[str, ...] = ()
    allow_unexpected: tuple[str, ...] = ()
    allow_mismatch: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    """How a snapshot differs from the live class, when both were given."""

    @property
    def name(self) -> str:
        return self.signature.target


_CACHE: dict[tuple[str, str], tuple[Signature, Any]] = {}


def live_signature(spec_text: str, kwargs: Any = None, *, cached: bool = True) -> tuple[Signature, Any]:
    """Build the target on meta; ``cached``: reuse this process's earlier build of the same spec
    (``snapshot --verify`` asks for the class as it is now)."""
    import json

    spec = parse_spec(spec_text, kwargs)
    require_torch(f"target {spec.text}")
    if not cached:
        return build_signature(spec)
    cache_key = (spec.text, json.dumps(spec.kwargs, sort_keys=True, default=str))
    if cache_key not in _CACHE:
        _CACHE[cache_key] = build_signature(spec)
    return _CACHE[cache_key]


def resolve_target(*, resolved: tuple[Signature, Any] | None = None, model: Any = None,
                   snapshot: str | None = None, key: tuple[Any, ...] | None = None,
                   allow_missing: tuple[str, ...] = (), allow_unexpected: tuple[str, ...] = (),
                   allow_mismatch: tuple[str, ...] = ()) -> Target | None:
    """From a resolved spec (``(Signature, live model or None)``, what the resolver hook returned),
    an ``nn.Module`` instance, and/or a snapshot file. None without any."""
    if isinstance(model, str):
        raise TypeError("resolve_target takes a model instance; the engine resolves spec strings")
    if resolved is None and model is None and snapshot is None:
        return None
    live_sig: Signature | None = None
    live_model: Any = None
    if resolved is not None:
        live_sig, live_model = resolved
    elif model is not None:
        cls = type(model)
        live_model = model
        live_sig = signature_of(model, f"{cls.__module__}:{cls.__qualname__}", {}, "instance")
    snap = load_snapshot(snapshot) if snapshot else None
    if live_sig is None and snap is None:
        raise TargetError("no target")
    drift = tuple(signature_drift(snap, live_sig)) if snap and live_sig else ()
    sig = snap if snap is not None else live_sig
    assert sig is not None
    return Target(sig, live_model if snap is None else None, key, allow_missing, allow_unexpected,
                  allow_mismatch, drift)


def signature_drift(old: Signature, new: Signature) -> list[str]:
    """What changed between a snapshot and the live class (keys, shapes, dtypes, versions)."""
    a, b = old.expected(), new.expected()
    out = [f"removed from the class: {k}" for k in a if k not in b]
    out += [f"added to the class: {k}" for k in b if k not in a]
    out += [f"{k}: shape {list(a[k].shape)} -> {list(b[k].shape)}" for k in a if k in b and a[k].shape != b[k].shape]
    out += [f"{k}: dtype {a[k].dtype} -> {b[k].dtype}" for k in a if k in b and a[k].dtype != b[k].dtype]
    va = {m.prefix: m.version for m in old.modules}
    out += [f"module {m.prefix or '(root)'}: version {va[m.prefix]} -> {m.version}"
            for m in new.modules if m.prefix in va and va[m.prefix] != m.version]
    return out
