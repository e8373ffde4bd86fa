"""CK2xx: compatibility findings from a CompatAnalysis, after the user's allow patterns."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..compat.analyze import CompatAnalysis
from ..findings import Finding
from ..targets.resolve import Target
from ..hookspecs import hookimpl
from ..rule import Rule

RULES = [
    Rule("CK201", "missing-keys", "error", "keys the target model expects are not in the checkpoint"),
    Rule("CK202", "unexpected-keys", "error", "checkpoint keys the target model does not expect"),
    Rule("CK203", "shape-mismatch", "error", "tensors whose shape differs from the model's"),
    Rule("CK204", "dtype-mismatch", "warning", "tensors that load with a dtype cast"),
    Rule("CK205", "non-tensor-value", "error", "an expected key holds something other than a tensor"),
    Rule("CK206", "fix-available", "info", "how to make the checkpoint load: renames, drops, the snippet"),
    Rule("CK207", "inexact-snapshot", "info", "a snapshot replays default rules for modules with custom load logic"),
    Rule("CK208", "snapshot-drift", "warning", "the snapshot differs from the live model class"),
    Rule("CK209", "no-state-dict", "error", "no state_dict found in the checkpoint for the target"),
    Rule("CK210", "load-raises", "error", "the target's own load code raises on this checkpoint"),
    Rule("CK211", "tied-weights", "info", "weights the model ties that the checkpoint stores apart, or once"),
]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context):  # type: ignore[no-untyped-def]
    if context.target is None:
        return None
    if context.compat is None:
        return [Finding("CK209", "error", f"no state_dict for {context.target.name}: {context.compat_error}",
                        None, None, "name it with --key (e.g. --key state_dict)")]
    return compat_findings(context.compat, context.target)



def _allowed(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(key, p) for p in patterns)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _listing(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > n else "")


def compat_findings(rep: CompatAnalysis, target: Target) -> list[Finding]:
    r = rep.result
    fix_line = _fix_line(rep)
    where = "/".join(map(str, rep.state_dict.path)) or None
    out: list[Finding] = []
    missing = [k for k in r.missing if not _allowed(k, target.allow_missing)]
    unexpected = [k for k in r.unexpected if not _allowed(k, target.allow_unexpected)]
    shapes = {k: v for k, v in r.shape_mismatch.items() if not _allowed(k, target.allow_mismatch)}
    if missing:
        out.append(Finding("CK201", "error",
                           f"{_n(len(missing), 'key')} {rep.target} expects {'is' if len(missing) == 1 else 'are'} missing: "
                           f"{_listing(missing)}",
                           missing[0], where, fix_line))
    if unexpected:
        out.append(Finding("CK202", "error",
                           f"{_n(len(unexpected), 'checkpoint key')} {rep.target} does not expect: {_listing(unexpected)}",
                           unexpected[0], where, fix_line))
    if shapes:
        parts = [f"{k} {list(a)} vs model {list(b)}" for k, (a, b) in shapes.items()]
        out.append(Finding("CK203", "error",
                           f"{_n(len(shapes), 'shape mismatch', 'shape mismatches')} (strict=False still raises): "
                           f"{_listing(parts, 3)}",
                           next(iter(shapes)), where, fix_line))
    if r.load_error:
        out.append(Finding("CK210", "error", f"{rep.target}'s own load code raises: {r.load_error}", None, where,
                           "look at the module's _load_from_state_dict / load hooks: the checkpoint misses "
                           "something they need (often the state_dict's _metadata versions)"))
    if r.non_tensor:
        keys = list(r.non_tensor)
        out.append(Finding("CK205", "error",
                           f"{_n(len(keys), 'expected key')} {'holds a non-tensor value' if len(keys) == 1 else 'hold non-tensor values'}: "
                           f"{_listing(keys)}",
                           keys[0], where, "save tensors under these keys"))
    if r.dtype_mismatch:
        parts = [f"{k} {a}->{b}" for k, (a, b) in r.dtype_mismatch.items()]
        out.append(Finding("CK204", "warning",
                           f"{_n(len(parts), 'tensor')} {'loads' if len(parts) == 1 else 'load'} with a dtype cast: {_listing(parts, 3)}",
                           next(iter(r.dtype_mismatch)), where,
                           "cast deliberately (model.half()/.to(dtype)) or use load_state_dict(..., assign=True)"))
    if rep.fix is not None and (missing or unexpected or shapes):
        out.append(Finding("CK206", "info", "how to load it: " + "; ".join(rep.fix.diagnosis),
                           None, where, None))
    out.extend(_ties(rep, where))
    if not rep.exact:
        out.append(Finding("CK207", "info", " ".join(r.notes) or "snapshot replays default load rules",
                           None, None, "check against the live class (--model) for torch's exact verdict"))
    for d in target.drift[:20]:
        out.append(Finding("CK208", "warning", f"snapshot differs from the live class: {d}", None, None,
                           "regenerate it: ckptlint snapshot SPEC -o FILE"))
    return out


def _ties(rep: CompatAnalysis, where: str | None) -> list[Finding]:
    """Tied weights: one key missing is filled through the tie; two different tensors collide."""
    out = []
    entries = rep.state_dict.entries
    for key, first in rep.ties:
        a, b = entries.get(first), entries.get(key)
        if a is not None and b is None and key in rep.result.missing:
            out.append(Finding("CK211", "info",
                               f"{key} is tied to {first} in the model: loading {first} fills it, though "
                               "load_state_dict still lists it as missing", key, where,
                               f"allow it (allow-missing = [\"{key}\"]) or load with strict=False"))
        elif (a is not None and b is not None and getattr(a, "storage_key", None) is not None
              and getattr(a, "storage_key", None) != getattr(b, "storage_key", None)):
            out.append(Finding("CK211", "info",
                               f"the model ties {key} to {first}, but the checkpoint stores them as separate "
                               f"tensors: whichever loads last ({key}) is the value both get", key, where, None))
    return out


def _fix_line(rep: CompatAnalysis) -> str | None:
    fix = rep.fix
    if fix is None:
        return None
    parts = []
    if fix.renames:
        parts.append("rename " + ", ".join(f"s/{p}/{r}/" for p, r in fix.renames))
    if fix.drop:
        parts.append(f"drop {_listing(fix.drop, 3)}")
    parts.append("load_state_dict(strict=True)" if fix.strict
                 else f"load_state_dict(strict=False) ({len(fix.random_init)} keys stay initialised)")
    return "; ".join(parts)
