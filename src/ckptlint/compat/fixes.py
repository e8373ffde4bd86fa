"""Infer how to make a checkpoint load: prefixes, renamed modules, a resized head.

Everything here is inferred from key names and shapes only, then verified by
replaying ``load_state_dict`` on the transformed state_dict; a fix is offered
only when the replay says it works (``strict``) or says exactly what stays
randomly initialised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..inventory import TensorRecord
from ..record import field, record, replace
from ..targets.signature import Signature, TensorSig
from .align import Leaves, align_modules, groups, module_rules
from .compare import CompatResult
from .history import rename_history
from .unwrap import NonTensor, StateDict

KNOWN_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "net.", "network.", "encoder.",
                  "student.", "teacher.", "ema.", "model.module.", "module.module.")
UNALIGNED = "ckptlint-unaligned"
"""Where a fix parks checkpoint modules whose name another, aligned module takes (then dropped)."""
HEAD_NAMES = ("fc", "head", "heads", "classifier", "linear", "logits", "last_linear", "cls_head", "out")


@record(frozen=False)
class Fix:
    renames: list[tuple[str, str]] = field(default_factory=list)
    """(regex, replacement) applied in order to every key, as re.sub does."""
    drop: list[str] = field(default_factory=list)
    """Keys (after renaming) to leave out: unexpected ones and shape-mismatched ones."""
    random_init: list[str] = field(default_factory=list)
    """Model keys the fixed load leaves at their initial values."""
    strict: bool = True
    diagnosis: list[str] = field(default_factory=list)
    snippet: str = ""
    transpose: list[str] = field(default_factory=list)
    """Keys (after renaming) stored transposed (Conv1D-style ``[in, out]`` weights): loaded as ``.t()``."""
    backfilled: list[str] = field(default_factory=list)
    """num_batches_tracked keys not in ``random_init`` (torch does not call them missing) that BatchNorm
    fills with its own initial value: the fixed state_dict gives the module no version."""


def rename_key(key: str, renames: list[tuple[str, str]]) -> str:
    for pattern, repl in renames:
        key = re.sub(pattern, repl, key)
    return key


def apply_fix(sd: StateDict, renames: list[tuple[str, str]], drop: list[str],
              transpose: list[str] | tuple[str, ...] = ()) -> StateDict:
    """The state_dict the snippet builds (same renaming of keys and of ``_metadata``)."""
    dropped = set(drop)
    flip = set(transpose)
    entries: dict[str, Any] = {}
    for k, v in sd.entries.items():
        nk = rename_key(k, renames)
        if nk not in dropped:
            entries[nk] = _transposed(v) if nk in flip else v
    metadata = None
    if sd.metadata is not None:
        metadata = {rename_key(k + ".", renames)[:-1]: v for k, v in sd.metadata.items()}
    return StateDict(sd.path, entries, metadata, sd.how, sd.ordered)


def _transposed(v: Any) -> Any:
    if isinstance(v, TensorRecord) and len(v.shape) == 2:
        return replace(v, shape=tuple(reversed(v.shape)),
                       stride=None if v.stride is None else tuple(reversed(v.stride)))
    return v


def _shape_of(v: Any) -> tuple[int, ...] | None:
    return None if isinstance(v, NonTensor) else tuple(v.shape)


def infer_fix(sig: Signature, sd: StateDict, result: CompatResult,
              compare: Callable[[StateDict], CompatResult]) -> Fix | None:
    """A fix, verified with ``compare``; None when the checkpoint already loads strictly."""
    if result.strict_ok:
        return None
    expected = sig.expected()
    fix = Fix()
    renames = _best_prefix_renames(sd.entries, expected)
    fix.diagnosis.extend(_describe_prefix(r) for r in renames)
    renamed = {rename_key(k, renames): _shape_of(v) for k, v in sd.entries.items()}
    history, said = rename_history(renamed, expected)
    fix.diagnosis.extend(said)
    renames += history
    renamed = {rename_key(k, renames): _shape_of(v) for k, v in sd.entries.items()}
    pairs = align_modules(*_candidates(renamed, expected), sd.ordered)
    moved = [(a, b) for a, b in pairs if a != b]
    if moved:
        more = f", …and {len(moved) - 20} more" if len(moved) > 20 else ""
        how = ("aligned in order by parameter names and shapes" if sd.ordered else
               "the file lists keys by name, not in saving order: aligned only by numeric index within "
               "modules named alike, by parameter names and shapes")
        fix.diagnosis.append(f"checkpoint modules go to other model modules ({how}): "
                             + ", ".join(f"{a!r} -> {b!r}" for a, b in moved[:20]) + more)
    sources = {a for a, _ in moved}
    have_mods = {k.rpartition(".")[0] for k in renamed}
    # a module moved onto a name the checkpoint also uses for an unaligned module: set that one
    # aside (it is discarded, and named), so two tensors never land on one key
    parked = [(b, f"{UNALIGNED}.{b}") for _, b in moved if b in have_mods and b not in sources]
    renames += module_rules(moved + parked)
    fixed = apply_fix(sd, renames, [])
    res = compare(fixed)
    transpose = sorted(k for k, (got, want) in res.shape_mismatch.items()
                       if len(got) == 2 and got[0] != got[1] and tuple(reversed(got)) == tuple(want))
    if transpose:
        fix.diagnosis.append(f"{len(transpose)} weight{'s are' if len(transpose) != 1 else ' is'} stored "
                             f"transposed (Conv1D-style [in, out], e.g. {transpose[0]}): loaded as .t()")
        res = compare(apply_fix(sd, renames, [], transpose))
    # two checkpoint tensors renamed onto one key: whichever came last would load, silently: drop both
    seen: dict[str, int] = {}
    for k in sd.entries:
        nk = rename_key(k, renames)
        seen[nk] = seen.get(nk, 0) + 1
    collided = {k for k, n in seen.items() if n > 1}
    if collided:
        fix.diagnosis.append(f"{len(collided)} key{'s' if len(collided) != 1 else ''} would receive two checkpoint "
                             f"tensors after renaming (e.g. {sorted(collided)[0]}): both are discarded")
    drop = sorted(set(res.unexpected) | set(res.shape_mismatch) | set(res.non_tensor) | collided)
    heads = _head_groups(res.shape_mismatch, sig)
    if heads:
        fix.diagnosis.append(
            f"resized head {', '.join(heads)} ({_shapes(res.shape_mismatch)}): "
            "its weights are dropped and stay randomly initialised")
    final = compare(apply_fix(sd, renames, drop, transpose))
    if not final.nonstrict_ok:
        return None
    fix.renames = renames
    fix.drop = drop
    fix.transpose = transpose
    loaded = set(apply_fix(sd, renames, drop, transpose).entries)
    tied = {k for k in final.missing if sig.shared.get(k) in loaded}
    fix.random_init = sorted(set(final.missing) - tied)
    fix.backfilled = backfilled(sig, apply_fix(sd, renames, drop, transpose))
    fix.strict = final.strict_ok
    if drop:
        dropped = set(drop)
        originals = [k for k in sd.entries if rename_key(k, renames) in dropped]
        fix.diagnosis.append(f"discarded from the checkpoint ({len(originals)}): {_listing(originals)}")
    if tied:
        fix.diagnosis.append(f"{', '.join(sorted(tied))} {'is' if len(tied) == 1 else 'are'} tied to loaded "
                             "weights and filled through the tie (strict=True still calls them missing)")
    if fix.random_init:
        n = len(fix.random_init)
        fix.diagnosis.append(f"left at {'its' if n == 1 else 'their'} initial value{'s' if n != 1 else ''} "
                             f"({n}): {_listing(fix.random_init)}")
    if fix.backfilled:
        n = len(fix.backfilled)
        fix.diagnosis.append(f"left at {'its' if n == 1 else 'their'} initial value{'s' if n != 1 else ''} (0) "
                             f"by BatchNorm itself, which fills {'it' if n == 1 else 'them'} in because the "
                             f"checkpoint gives the module no version (no _metadata) ({n}): "
                             f"{_listing(fix.backfilled)}")
    return fix


def backfilled(sig: Signature, sd: StateDict) -> list[str]:
    """num_batches_tracked keys BatchNorm fills with its own initial value on load: the state_dict
    lacks them and has no version >= 2 for the module (torch's ``_load_from_state_dict``)."""
    out = []
    for m in sig.modules:
        if m.load_rule != "batchnorm" or "num_batches_tracked" not in m.local:
            continue
        key = (m.prefix + "." if m.prefix else "") + "num_batches_tracked"
        md = {} if sd.metadata is None else sd.metadata.get(m.prefix, {}) or {}
        version = md.get("version")
        if (version is None or version < 2) and key not in sd.entries:
            out.append(key)
    return out


def _listing(keys: list[str], limit: int = 12) -> str:
    more = f", …and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _candidates(renamed: dict[str, tuple[int, ...] | None], expected: dict[str, TensorSig]) -> tuple[
        list[tuple[str, Leaves]], list[tuple[str, Leaves]]]:
    """Every module of both sides, in order: a module whose name and shapes match may still be the
    wrong one (vgg11 -> vgg11_bn: the checkpoint's 0.8 belongs at 0.11, and its 0.6 at 0.8)."""
    return groups(renamed), groups({k: t.shape for k, t in expected.items() if not t.lazy})


def _shapes(mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> str:
    return "; ".join(f"{k}: {list(a)} vs {list(b)}" for k, (a, b) in list(mismatch.items())[:2])


def _score(keys: list[tuple[str, Any]], expected: dict[str, Any]) -> tuple[int, int]:
    """(keys that match a model key with the same shape, keys that match by name)."""
    same = named = 0
    for k, shape in keys:
        want = expected.get(k)
        if want is not None:
            named += 1
            same += shape is not None and tuple(shape) == tuple(want.shape)
    return same, named


def _best_prefix_renames(entries: dict[str, Any], expected: dict[str, Any]) -> list[tuple[str, str]]:
    """Greedy: strip, add or swap a leading prefix while more keys match (shapes first, then names;
    at most 3 steps)."""
    renames: list[tuple[str, str]] = []
    current = [(k, None if isinstance(v, NonTensor) else v.shape) for k, v in entries.items()]
    score = _score(current, expected)
    for _ in range(3):
        best: tuple[tuple[int, int], tuple[str, str]] | None = None
        keys = [k for k, _ in current]
        for rule in _candidate_rules(keys, expected):
            trial = [(rename_key(k, [rule]), shp) for k, shp in current]
            if len({k for k, _ in trial}) < len(trial):
                continue  # two checkpoint keys would land on one name: not a rename
            s = _score(trial, expected)
            if s > score and (best is None or s > best[0]):
                best = (s, rule)
        if best is None:
            break
        rule = _spare_matching(best[1], keys, expected)
        current = [(rename_key(k, [rule]), shp) for k, shp in current]
        score = _score(current, expected)
        renames.append(rule)
    return renames


def _spare_matching(rule: tuple[str, str], keys: list[str], expected: dict[str, Any]) -> tuple[str, str]:
    """Keep keys that already match out of a rule (e.g. add 'backbone.' but leave 'fc.*' alone)."""
    lost = [k for k in keys if k in expected and rename_key(k, [rule]) not in expected]
    if not lost:
        return rule
    heads = sorted({k.split(".")[0] for k in lost})
    guard = "(?!(?:" + "|".join(re.escape(h) for h in heads) + ")\\.)"
    return ("^" + guard + rule[0][1:], rule[1])


def _leading(keys: list[str], depth: int = 2) -> dict[str, int]:
    counts: dict[str, int] = {}
    for k in keys:
        parts = k.split(".")
        for d in range(1, min(depth, len(parts) - 1) + 1):
            p = ".".join(parts[:d]) + "."
            counts[p] = counts.get(p, 0) + 1
    return counts


def _candidate_rules(keys: list[str], expected: dict[str, Any]) -> list[tuple[str, str]]:
    """Strip one of the checkpoint's leading prefixes, add one of the model's, or swap a common one
    for another; the score decides which (if any) is taken."""
    have = _leading(keys)
    want = _leading(list(expected))
    n = max(1, len(keys))
    top_have = {p for p, _ in sorted(have.items(), key=lambda kv: -kv[1])[:30]}
    top_want = {p for p, _ in sorted(want.items(), key=lambda kv: -kv[1])[:30]}
    common_have = {p for p, c in have.items() if c * 2 >= n} | {p for p in KNOWN_PREFIXES if p in have}
    common_want = {p for p, c in want.items() if c * 2 >= len(expected)} | {p for p in KNOWN_PREFIXES if p in want}
    rules: list[tuple[str, str]] = [(f"^{re.escape(p)}", "") for p in sorted(top_have | common_have)]
    rules += [("^", p) for p in sorted(top_want | common_want)]
    rules += [(f"^{re.escape(p)}", q) for p in sorted(common_have) for q in sorted(common_want) if p != q]
    return rules


def _describe_prefix(rule: tuple[str, str]) -> str:
    pattern, repl = rule
    old = pattern[1:].replace("\\", "")
    if not old:
        return f"the model's keys start with {repl!r}: add it"
    if not repl:
        return (f"checkpoint keys carry a {old!r} prefix (e.g. DDP 'module.', torch.compile '_orig_mod.', "
                "Lightning 'model.'): strip it")
    return f"checkpoint prefix {old!r} corresponds to {repl!r} in the model"


def module_renames(entries: dict[str, Any], expected: dict[str, Any], ordered: bool) -> list[tuple[str, str]]:
    """(old, new) module pairs that move keys which do not load onto model keys (``align_modules``;
    ``ordered``: both dicts are in saving order); the values carry ``.shape`` (tensor records, signatures)."""
    renamed = {k: _shape_of(v) for k, v in entries.items()}
    sigs = {k: TensorSig(tuple(v.shape), "", "") for k, v in expected.items()}
    return [(a, b) for a, b in align_modules(*_candidates(renamed, sigs), ordered) if a != b]


def _head_groups(mismatch: dict[str, Any], sig: Signature) -> list[str]:
    """Shape-mismatched modules that look like a classifier head: among the last ones, or named so."""
    mods = sorted({k.rpartition(".")[0] for k in mismatch})
    order = [m.prefix for m in sig.modules if m.local]
    last = set(order[-3:])
    return [m or "(the model itself)" for m in mods
            if m in last or m.split(".")[-1] in HEAD_NAMES or m.split(".")[0] in HEAD_NAMES]
