"""Infer how to make a checkpoint load: prefixes, renamed modules, a resized head.

Everything here is inferred from key names and shapes only, then verified by
replaying ``load_state_dict`` on the transformed state_dict; a fix is offered
only when the replay says it works (``strict``) or says exactly what stays
randomly initialised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..targets.signature import Signature
from .compare import CompatResult
from .unwrap import NonTensor, StateDict

KNOWN_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "net.", "network.", "encoder.",
                  "student.", "teacher.", "ema.", "model.module.", "module.module.")
HEAD_NAMES = ("fc", "head", "heads", "classifier", "linear", "logits", "last_linear", "cls_head", "out")


@dataclass
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


def rename_key(key: str, renames: list[tuple[str, str]]) -> str:
    for pattern, repl in renames:
        key = re.sub(pattern, repl, key)
    return key


def apply_fix(sd: StateDict, renames: list[tuple[str, str]], drop: list[str]) -> StateDict:
    """The state_dict the snippet builds (same renaming of keys and of ``_metadata``)."""
    dropped = set(drop)
    entries: dict[str, Any] = {}
    for k, v in sd.entries.items():
        nk = rename_key(k, renames)
        if nk not in dropped:
            entries[nk] = v
    metadata = None
    if sd.metadata is not None:
        metadata = {rename_key(k + ".", renames)[:-1]: v for k, v in sd.metadata.items()}
    return StateDict(sd.path, entries, metadata, sd.how)


def infer_fix(sig: Signature, sd: StateDict, result: CompatResult,
              compare: Callable[[StateDict], CompatResult]) -> Fix | None:
    """A fix, verified with ``compare``; None when the checkpoint already loads strictly."""
    if result.strict_ok:
        return None
    expected = sig.expected()
    fix = Fix()
    renames = _best_prefix_renames(sd.entries, expected)
    if renames:
        fix.diagnosis.extend(_describe_prefix(r) for r in renames)
    renamed = {rename_key(k, renames): v for k, v in sd.entries.items()}
    module_renames = _module_renames(renamed, expected)
    for old, new in module_renames:
        fix.diagnosis.append(f"module {old!r} in the checkpoint matches {new!r} in the model by structure and shapes")
    renames = renames + [(f"^{re.escape(old)}\\.", f"{new}.") for old, new in module_renames]
    fixed = apply_fix(sd, renames, [])
    res = compare(fixed)
    drop = sorted(set(res.unexpected) | set(res.shape_mismatch) | set(res.non_tensor))
    heads = _head_groups(res.shape_mismatch, sig)
    if heads:
        fix.diagnosis.append(
            f"resized head {', '.join(heads)} ({_shapes(res.shape_mismatch)}): "
            "its weights are dropped and stay randomly initialised")
    if res.unexpected:
        fix.diagnosis.append(f"{len(res.unexpected)} checkpoint keys have no place in the model and are dropped")
    final = compare(apply_fix(sd, renames, drop))
    if not final.nonstrict_ok:
        return None
    fix.renames = renames
    fix.drop = drop
    loaded = set(apply_fix(sd, renames, drop).entries)
    tied = {k for k in final.missing if sig.shared.get(k) in loaded}
    fix.random_init = sorted(set(final.missing) - tied)
    fix.strict = final.strict_ok
    if tied:
        fix.diagnosis.append(f"{', '.join(sorted(tied))} {'is' if len(tied) == 1 else 'are'} tied to loaded "
                             "weights and filled through the tie (strict=True still calls them missing)")
    if fix.random_init and not fix.diagnosis:
        n = len(fix.random_init)
        fix.diagnosis.append(f"{n} model key{'s are' if n != 1 else ' is'} not in the checkpoint and "
                             f"stay{'s' if n == 1 else ''} randomly initialised")
    return fix


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


def _groups(keys: dict[str, Any]) -> dict[str, dict[str, tuple[int, ...]]]:
    groups: dict[str, dict[str, tuple[int, ...]]] = {}
    for k, v in keys.items():
        if isinstance(v, NonTensor):
            continue
        mod, dot, leaf = k.rpartition(".")
        groups.setdefault(mod if dot else "", {})[leaf] = tuple(v.shape)
    return groups


def _module_renames(renamed: dict[str, Any], expected: dict[str, Any]) -> list[tuple[str, str]]:
    """Unmatched checkpoint modules whose parameter names and shapes match exactly one missing module."""
    unmatched = {k: v for k, v in renamed.items() if k not in expected}
    missing = {k: v for k, v in expected.items() if k not in renamed}
    have = _groups(unmatched)
    want = _groups(missing)
    by_sig: dict[tuple[Any, ...], list[str]] = {}
    for mod, leaves in want.items():
        by_sig.setdefault(tuple(sorted(leaves.items())), []).append(mod)
    used: set[str] = set()
    out: list[tuple[str, str]] = []
    have_by_sig: dict[tuple[Any, ...], list[str]] = {}
    for mod, leaves in have.items():
        have_by_sig.setdefault(tuple(sorted(leaves.items())), []).append(mod)
    for s, mods in have_by_sig.items():
        targets = [m for m in by_sig.get(s, []) if m not in used]
        if len(mods) == 1 and len(targets) == 1 and mods[0] and targets[0]:
            out.append((mods[0], targets[0]))
            used.add(targets[0])
    return out


def _head_groups(mismatch: dict[str, Any], sig: Signature) -> list[str]:
    """Shape-mismatched modules that look like a classifier head: among the last ones, or named so."""
    mods = sorted({k.rpartition(".")[0] for k in mismatch})
    order = [m.prefix for m in sig.modules if m.local]
    last = set(order[-3:])
    return [m or "(the model itself)" for m in mods
            if m in last or m.split(".")[-1] in HEAD_NAMES or m.split(".")[0] in HEAD_NAMES]
