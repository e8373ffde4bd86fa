"""CK2xx: compatibility findings from a CompatAnalysis, after the user's allow patterns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..filenames import fnmatchcase
from ..findings import Finding
from ..plugin import FileContext, hookimpl
from ..rule import Rule

if TYPE_CHECKING:  # the compat analyses load only for a check with a target (startup: docs/development.md)
    from ..compat.analyze import CompatAnalysis
    from ..targets.resolve import Target

MISSING = Rule("CK201", "missing-keys", "error", "keys the target model expects are not in the checkpoint")
UNEXPECTED = Rule("CK202", "unexpected-keys", "error", "checkpoint keys the target model does not expect")
SHAPE = Rule("CK203", "shape-mismatch", "error", "tensors whose shape differs from the model's")
DTYPE = Rule("CK204", "dtype-mismatch", "warning", "tensors that load with a dtype cast")
NON_TENSOR = Rule("CK205", "non-tensor-value", "error", "an expected key holds something other than a tensor")
FIX = Rule("CK206", "fix-available", "info", "how to make the checkpoint load: renames, drops, the snippet")
INEXACT = Rule("CK207", "inexact-snapshot", "info",
               "a snapshot replays default rules for modules with custom load logic")
DRIFT = Rule("CK208", "snapshot-drift", "warning", "the snapshot differs from the live model class")
NO_STATE_DICT = Rule("CK209", "no-state-dict", "error", "no state_dict found in the checkpoint for the target")
LOAD_RAISES = Rule("CK210", "load-raises", "error", "the target's own load code raises on this checkpoint")
TIED = Rule("CK211", "tied-weights", "info", "weights the model ties that the checkpoint stores apart, or once")
RULES = [MISSING, UNEXPECTED, SHAPE, DTYPE, NON_TENSOR, FIX, INEXACT, DRIFT, NO_STATE_DICT, LOAD_RAISES, TIED]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding] | None:
    if context.target is None:
        return None
    if context.compat is None:
        return [NO_STATE_DICT.finding(f"no state_dict for {context.target.name}: {context.compat_error}",
                                      fix="name it with --key (e.g. --key state_dict)")]
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
    lib = rep.library  # keys the library's own loader maps, ties or ignores: CK212 explains them
    missing = [k for k in r.missing if not _allowed(k, target.allow_missing)
               and (lib is None or k not in lib.explained_missing)]
    unexpected = [k for k in r.unexpected if not _allowed(k, target.allow_unexpected)
                  and (lib is None or k not in lib.explained_unexpected)]
    shapes = {k: v for k, v in r.shape_mismatch.items() if not _allowed(k, target.allow_mismatch)}
    if missing:
        out.append(MISSING.finding(
            f"{_n(len(missing), 'key')} {rep.target} expects {'is' if len(missing) == 1 else 'are'} missing: "
            f"{_listing(missing)}", key=missing[0], location=where, fix=fix_line))
    if unexpected:
        out.append(UNEXPECTED.finding(
            f"{_n(len(unexpected), 'checkpoint key')} {rep.target} does not expect: {_listing(unexpected)}",
            key=unexpected[0], location=where, fix=fix_line))
    if shapes:
        parts = [f"{k} {list(a)} vs model {list(b)}" for k, (a, b) in shapes.items()]
        out.append(SHAPE.finding(
            f"{_n(len(shapes), 'shape mismatch', 'shape mismatches')} (strict=False still raises): "
            f"{_listing(parts, 3)}", key=next(iter(shapes)), location=where, fix=fix_line))
    if r.load_error:
        out.append(LOAD_RAISES.finding(
            f"{rep.target}'s own load code raises: {r.load_error}", location=where,
            fix="look at the module's _load_from_state_dict / load hooks: the checkpoint misses "
                "something they need (often the state_dict's _metadata versions)"))
    if r.non_tensor:
        keys = list(r.non_tensor)
        holds = "holds a non-tensor value" if len(keys) == 1 else "hold non-tensor values"
        fix = "save tensors under these keys"
        from ..compat.compare import META

        if all(v == META for v in r.non_tensor.values()):  # torch's copy from a meta tensor raises
            holds = "holds a meta tensor (no data)" if len(keys) == 1 else "hold meta tensors (no data)"
            fix = "save real values (materialise the model first), or load without these keys (the fix drops them)"
        out.append(NON_TENSOR.finding(f"{_n(len(keys), 'expected key')} {holds}: {_listing(keys)}",
                                      key=keys[0], location=where, fix=fix))
    if r.dtype_mismatch:
        parts = [f"{k} {a}->{b}" for k, (a, b) in r.dtype_mismatch.items()]
        out.append(DTYPE.finding(
            f"{_n(len(parts), 'tensor')} {'loads' if len(parts) == 1 else 'load'} with a dtype cast: "
            f"{_listing(parts, 3)}", key=next(iter(r.dtype_mismatch)), location=where,
            fix=_dtype_fix(rep)))
    if rep.fix is not None and (missing or unexpected or shapes):
        out.append(FIX.finding("how to load it: " + "; ".join(rep.fix.diagnosis), location=where))
    out.extend(_ties(rep, where))
    if not rep.exact:
        out.append(INEXACT.finding(" ".join(r.notes) or "snapshot replays default load rules",
                                   fix="check against the live class (--model) for torch's exact verdict"))
    for d in target.drift[:20]:
        out.append(DRIFT.finding(f"snapshot differs from the live class: {d}",
                                 fix="regenerate it: ckptlint snapshot SPEC -o FILE"))
    return out


def _ties(rep: CompatAnalysis, where: str | None) -> list[Finding]:
    """Tied weights: one key missing is filled through the tie; two different tensors collide."""
    out = []
    entries = rep.state_dict.entries
    for key, first in rep.ties:
        a, b = entries.get(first), entries.get(key)
        if a is not None and b is None and key in rep.result.missing:
            out.append(TIED.finding(
                f"{key} is tied to {first} in the model: loading {first} fills it, though "
                "load_state_dict still lists it as missing", key=key, location=where,
                fix=f"allow it (allow-missing = [\"{key}\"]) or load with strict=False"))
        elif (a is not None and b is not None and getattr(a, "storage_key", None) is not None
              and getattr(a, "storage_key", None) != getattr(b, "storage_key", None)):
            out.append(TIED.finding(
                f"the model ties {key} to {first}, but the checkpoint stores them as separate "
                f"tensors: whichever loads last ({key}) is the value both get", key=key, location=where))
    return out


def _dtype_fix(rep: CompatAnalysis) -> str:
    """fp8 codes the fix dequantizes with their scales must not be cast (a cast drops the scales)."""
    cast = "cast deliberately (model.half()/.to(dtype)) or use load_state_dict(..., assign=True)"
    from ..compat.training import dequantizing

    if rep.fix is None or not dequantizing(rep.fix.diagnosis):
        return cast
    fp8 = [k for k, (a, _) in rep.result.dtype_mismatch.items() if "float8" in a]
    if not fp8:
        return cast
    line = ("do not cast the fp8 weights: the fix dequantizes them with their scales (code * scale, "
            "as the snippet does)")
    return line if len(fp8) == len(rep.result.dtype_mismatch) else f"{line}; for the others: {cast}"


def _stay(n: int) -> str:
    return f"{_n(n, 'key')} stay{'s' if n == 1 else ''} initialised"


def _fix_line(rep: CompatAnalysis) -> str | None:
    fix = rep.fix
    if fix is None:
        return None
    lib = rep.library
    if lib is not None and lib.no_generic_fix and fix is lib.fix:  # the library's own loader is the fix
        n = len(fix.random_init)
        return f"load it with {lib.loader} (as the snippet does)" + (f": {_stay(n)}" if n else "")
    parts = []
    if fix.renames:
        parts.append("rename " + ", ".join(f"s/{p}/{r}/" for p, r in fix.renames))
    from ..compat.training import dequantizing

    if dequantizing(fix.diagnosis):  # compat.training: fp8 codes with their scales
        parts.append("dequantize the fp8 weights with their scales (code * scale, as the snippet does)")
    if fix.drop:
        parts.append(f"drop {_listing(fix.drop, 3)}")
    if fix.transpose:
        parts.append(f"transpose {_listing(fix.transpose, 3)} (.t())")
    stay = f" ({_stay(len(fix.random_init))})" if fix.random_init else ""
    parts.append(f"load_state_dict(strict={fix.strict}){stay}")
    return "; ".join(parts)
