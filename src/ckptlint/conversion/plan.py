"""Which tensors go out under which names: the state_dict ``check`` finds, the compat fix, ties, what is left out.

Nothing here reads tensor bytes: a :class:`Plan` is decided from the Inventory (and a target's signature)
alone, before DEST is opened, so every refusal comes before any output exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..compat.unwrap import NonTensor, StateDict, find_state_dict
from ..inventory import Inventory, TensorRecord
from ..record import field, record
from .result import ConvertError

Supported = Callable[[TensorRecord], str | None]
"""None when safetensors can hold the tensor, else why not (one short phrase)."""


@record(frozen=False)
class Plan:
    """The keys to write, in the state_dict's order, and every decision that shaped them."""

    entries: list[tuple[str, TensorRecord]]
    state_dict: StateDict
    left_out: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)
    tied: dict[str, str] = field(default_factory=dict)
    tied_dropped: bool = False
    mapping: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    transposed: list[str] = field(default_factory=list)
    target: str | None = None
    strict: bool | None = None
    random_init: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    hooks: list[tuple[str, str]] = field(default_factory=list)
    stringified: list[str] = field(default_factory=list)


def make_plan(inv: Inventory, supported: Supported, *, key: tuple[Any, ...] | None = None, target: Any = None,
              apply_fix: bool = False, skip_unsupported: bool = False, drop_tied: bool = False,
              force: bool = False) -> Plan:
    """The plan for ``inv``; ``target`` is a resolved :class:`~ckptlint.targets.resolve.Target` or None.

    Raises :class:`ConvertError` for unsupported tensors (unless ``skip_unsupported``), a target the
    checkpoint cannot be made to load into (with ``apply_fix``), or a key safetensors cannot name."""
    plan = _with_target(inv, target, key, apply_fix) if target is not None else \
        Plan([], find_state_dict(inv, key))
    sd = plan.state_dict
    originals = plan.mapping
    plan.stringified = _typed_keys(inv, sd)
    for name, value in sd.entries.items():
        if isinstance(value, NonTensor):
            held = _count_tensors(value.value)
            if held:  # a quantized module's packed (weight, bias) tuple: the weights must not vanish quietly
                holds = f"a {value.summary} holding {held} tensor{'s' if held != 1 else ''}, not one tensor"
                plan.unsupported.append((originals.get(name, name), holds))
            else:
                plan.left_out.append((originals.get(name, name), value.summary))
            continue
        why = supported(value)
        if why is not None:
            plan.unsupported.append((originals.get(name, name), why))
            continue
        plan.entries.append((name, value))
    if plan.unsupported and not skip_unsupported:
        keys = ", ".join(f"{k} ({why})" for k, why in plan.unsupported[:8])
        more = f", …and {len(plan.unsupported) - 8} more" if len(plan.unsupported) > 8 else ""
        raise ConvertError(f"{len(plan.unsupported)} tensor{'s' if len(plan.unsupported) != 1 else ''} safetensors "
                           f"cannot hold: {keys}{more} (--skip-unsupported leaves them out)")
    plan.left_out.extend(_around(inv.structure, tuple(sd.path)))
    if plan.state_dict.how == "module object":
        plan.hooks = state_dict_hooks(inv.structure, tuple(plan.state_dict.path))
        if plan.hooks and not force:
            listed = ", ".join(f"{m or '(the model)'}: {h}" for m, h in plan.hooks[:6])
            raise ConvertError(f"the pickled module has state_dict hooks ({listed}) that change what state_dict() "
                               "returns; convert cannot run them (--force writes the state_dict without them)")
    for name, _ in plan.entries:
        if name == "__metadata__":
            raise ConvertError("a tensor is named '__metadata__', which safetensors reserves for its metadata")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ConvertError(f"tensor key {name!r} is not valid Unicode text (a lone surrogate): safetensors "
                               "names are UTF-8") from None
    plan.tied = _ties(plan.entries)
    if drop_tied and plan.tied:
        plan.entries = [(k, v) for k, v in plan.entries if k not in plan.tied]
        plan.tied_dropped = True
        if plan.strict:  # load_state_dict(strict=True) calls a key it expects missing, tied or not
            plan.strict = False
            plan.diagnosis.append(f"{len(plan.tied)} tied key(s) left out (--drop-tied): strict=True calls them "
                                  "missing; the model's own tie fills them")
    return plan


def _with_target(inv: Inventory, target: Any, key: tuple[Any, ...] | None, apply_fix: bool) -> Plan:
    """``check``'s compat analysis (compat.analyze) of ``inv`` against the target; with ``apply_fix``, its
    verified fix applied (compat.fixes.apply_fix) to the state_dict that gets written."""
    from ..compat.analyze import analyze
    from ..compat.fixes import apply_fix as fixed_state_dict
    from ..compat.fixes import rename_key
    from ..errors import UnwrapError

    try:
        analysis = analyze(inv, target.signature, model=target.model, key=key if key is not None else target.key)
    except UnwrapError as e:
        raise ConvertError(str(e)) from None
    sd, result, fix = analysis.state_dict, analysis.result, analysis.fix
    plan = Plan([], sd, target=analysis.target)
    if not apply_fix or result.strict_ok:
        plan.strict = result.strict_ok
        if not result.strict_ok:
            plan.diagnosis.append(f"refuses it with load_state_dict(strict=True): {len(result.missing)} missing, "
                                  f"{len(result.unexpected)} unexpected, {len(result.shape_mismatch)} shape-mismatched "
                                  "key(s); --apply-fix writes the keys it expects")
        return plan
    if fix is None:
        raise ConvertError(f"no verified fix makes this checkpoint load into {analysis.target}: "
                           f"{len(result.missing)} missing, {len(result.unexpected)} unexpected, "
                           f"{len(result.shape_mismatch)} shape-mismatched key(s) (see ckptlint check --model)")
    plan.state_dict = fixed_state_dict(sd, fix.renames, fix.drop, fix.transpose)
    plan.strict = fix.strict
    plan.random_init = list(fix.random_init)
    plan.diagnosis = list(fix.diagnosis)
    plan.transposed = list(fix.transpose)
    dropped = set(fix.drop)
    for old in sd.entries:
        new = rename_key(old, fix.renames)
        if new in dropped:
            plan.dropped.append(old)
        elif new != old:
            plan.mapping[new] = old
    return plan


def _typed_keys(inv: Inventory, sd: StateDict) -> list[str]:
    """The state_dict's keys that are not strings (``0``, ``1.5``, ``None``), as ``repr (type)``: safetensors
    names are strings, so they are written as ``str(key)``. Two keys with one ``str`` (``0`` and ``"0"``) would
    put two tensors under one name: ConvertError, naming them."""
    if sd.how == "module object" or sd.how == "torchscript module":
        return []
    depth = len(sd.path)
    by_name: dict[str, set[Any]] = {}
    for rec in inv.tensors:
        if len(rec.path) == depth + 1 and all(str(a) == str(b) for a, b in zip(rec.path, sd.path, strict=False)):
            last = rec.path[-1]
            by_name.setdefault(str(last), set()).add((type(last).__name__, last))
    clashes = {name: keys for name, keys in by_name.items() if len(keys) > 1}
    if clashes:
        name, keys = next(iter(clashes.items()))
        spelled = " and ".join(f"{k!r} ({t})" for t, k in sorted(keys, key=repr))
        raise ConvertError(f"state_dict keys {spelled} are both named {name!r} in safetensors, which names tensors "
                           "by strings: one tensor would be lost")
    return [f"{k!r} ({t})" for keys in by_name.values() for t, k in keys if t != "str"]


_HOOKS = ("_state_dict_pre_hooks", "_state_dict_hooks")
METADATA_ONLY_HOOKS = frozenset({"torch.nn.utils.spectral_norm.SpectralNormStateDictHook"})
"""State_dict hooks that only write the module's ``_metadata`` version (which safetensors cannot hold either),
never a key or a tensor: the state_dict is the same without them."""


def state_dict_hooks(structure: Any, path: tuple[Any, ...], limit: int = 1_000_000) -> list[tuple[str, str]]:
    """(module name, hook) for every state_dict hook registered on the pickled module at ``path`` or its
    submodules: ``state_dict()`` runs them, a static conversion cannot."""
    from ..compat.unwrap import node_at, resolve_ref

    root = node_at(structure, path)
    out: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", root)]
    seen: set[int] = set()
    while stack and len(seen) < limit:
        name, mod = stack.pop()
        mod = resolve_ref(structure, mod)
        state = mod.get("state") if isinstance(mod, dict) else None
        if not isinstance(state, dict) or id(mod) in seen:
            continue
        seen.add(id(mod))
        for field_name in _HOOKS:
            hooks = resolve_ref(structure, state.get(field_name))
            if isinstance(hooks, dict):
                out.extend((name, what) for k, h in hooks.items()
                           if k != "__object__" and (what := _what(h)) not in METADATA_ONLY_HOOKS)
        children = resolve_ref(structure, state.get("_modules"))
        if isinstance(children, dict):
            stack.extend(reversed([(f"{name}.{k}" if name else str(k), v) for k, v in children.items()]))
    return out


def _ties(entries: list[tuple[str, TensorRecord]]) -> dict[str, str]:
    """key -> the first key that is the same tensor: same storage, offset, shape, strides and dtype (a tied
    weight, or one tensor saved under two names). Views of a shared storage that differ are not tied."""
    first: dict[tuple[Any, ...], str] = {}
    tied: dict[str, str] = {}
    for name, rec in entries:
        if rec.storage_key is None:
            continue
        ident = (rec.stream, rec.storage_key, rec.storage_offset, rec.shape, rec.stride, rec.dtype)
        if ident in first:
            tied[name] = first[ident]
        else:
            first[ident] = name
    return tied


def _around(structure: Any, path: tuple[Any, ...]) -> list[tuple[str, str]]:
    """What the checkpoint holds besides the state_dict at ``path``: the other entries of each dict on the
    way down (a training dictionary's optimizer, epoch, args …), summarised."""
    out: list[tuple[str, str]] = []
    node = structure
    prefix: list[str] = []
    for p in path:
        if isinstance(node, dict) and "__object__" in node and isinstance(node.get("items"), dict):
            node = node["items"]
        if not isinstance(node, dict) or "__object__" in node:
            break
        for k, v in node.items():
            if str(k) == str(p):
                continue
            same = isinstance(v, dict) and set(v) == {"__ref__"}  # the same object again, shown once
            out.append(("/".join([*prefix, str(k)]),
                        f"the same object as {v['__ref__'] or 'the top level'}" if same else _what(v)))
        node = node.get(str(p))
        prefix.append(str(p))
    return out


def _what(node: Any) -> str:
    """``dict, 120 tensors``, ``argparse.Namespace``, ``int`` …: enough to recognise what was left out."""
    if isinstance(node, dict):
        if "__tensor__" in node and len(node) == 1:
            return "tensor"
        for marker in ("__object__", "__global__"):
            if marker in node:
                return str(node[marker])
        n = _count_tensors(node)
        return f"dict, {n} tensor{'' if n == 1 else 's'}" if n else "dict"
    if isinstance(node, list):
        n = _count_tensors(node)
        return f"list, {n} tensor{'' if n == 1 else 's'}" if n else "list"
    return type(node).__name__


def _count_tensors(node: Any, budget: int = 100_000) -> int:
    stack, n, seen = [node], 0, 0
    while stack and seen < budget:
        cur = stack.pop()
        seen += 1
        if isinstance(cur, dict):
            if "__tensor__" in cur and len(cur) == 1:
                n += 1
            else:
                stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return n
