"""Module renames by alignment: the checkpoint's modules and the model's, in order, matched by shapes.

Layers keep their order when a model is edited (vgg11 -> vgg11_bn inserts a BatchNorm after
every conv, so every later index moves), so the modules that do not load are aligned as two
sequences (a longest-common-subsequence DP, ties broken towards equal names) where two modules
match when they hold the same parameter names with the same shapes. A greedy or unique-shape
match would pair the wrong layers as soon as two have the same shapes.

The order is evidence only where the file keeps the saving order (a pickled state_dict keeps
insertion order). A safetensors header or a shard index lists keys sorted by name, so for those
``align_by_names`` aligns only within a family of modules whose names differ in their numeric
components (``features.3`` / ``features.4``), in numeric order: the order those names state.
Modules outside such families move nowhere (a BERT checkpoint's sorted LayerNorms would
otherwise be paired with the wrong model LayerNorms: same shapes, wrong values).
"""

from __future__ import annotations

import re

Leaves = tuple[tuple[str, tuple[int, ...]], ...]
MAX_CELLS = 4_000_000
"""Above this many DP cells (2000 x 2000 modules) only modules with a unique signature are paired."""


def groups(keys: dict[str, tuple[int, ...] | None]) -> list[tuple[str, Leaves]]:
    """Modules (key prefix up to the last dot) in first-seen order, with their (leaf, shape) sets."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for k, shape in keys.items():
        if shape is None:
            continue
        mod, _, leaf = k.rpartition(".")
        out.setdefault(mod, {})[leaf] = tuple(shape)
    return [(m, tuple(sorted(leaves.items()))) for m, leaves in out.items()]


def align(have: list[tuple[str, Leaves]], want: list[tuple[str, Leaves]]) -> list[tuple[str, str]]:
    """(checkpoint module, model module) pairs of an order-preserving alignment with the most matches."""
    n, m = len(have), len(want)
    if n == 0 or m == 0:
        return []
    if n * m > MAX_CELLS:
        return _unique(have, want)
    # score[i][j]: best (matches, equal names) aligning have[i:] with want[j:]
    score = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        hi_name, hi_leaves = have[i]
        for j in range(m - 1, -1, -1):
            best = max(below[j], row[j + 1])
            if hi_leaves == want[j][1]:
                d = below[j + 1]
                cand = (d[0] + 1, d[1] + (hi_name == want[j][0]))
                best = max(best, cand)
            row[j] = best
    pairs: list[tuple[str, str]] = []
    i = j = 0
    while i < n and j < m:
        if have[i][1] == want[j][1]:
            d = score[i + 1][j + 1]
            if score[i][j] == (d[0] + 1, d[1] + (have[i][0] == want[j][0])):
                pairs.append((have[i][0], want[j][0]))
                i += 1
                j += 1
                continue
        if score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def align_modules(have: list[tuple[str, Leaves]], want: list[tuple[str, Leaves]],
                  ordered: bool) -> list[tuple[str, str]]:
    """``align`` when ``have`` is in the order the model saved it, else ``align_by_names``."""
    return align(have, want) if ordered else align_by_names(have, want)


def align_by_names(have: list[tuple[str, Leaves]], want: list[tuple[str, Leaves]]) -> list[tuple[str, str]]:
    """Alignment within families of modules named alike but for numeric components, each side in
    numeric order; a module whose name has no such family on the other side stays where it is."""
    fam_h: dict[tuple[str, ...], list[tuple[str, Leaves]]] = {}
    fam_w: dict[tuple[str, ...], list[tuple[str, Leaves]]] = {}
    for side, fam in ((have, fam_h), (want, fam_w)):
        for name, leaves in side:
            fam.setdefault(_pattern(name), []).append((name, leaves))
    pairs: list[tuple[str, str]] = []
    for pattern, mods in fam_h.items():
        others = fam_w.get(pattern)
        if not others:
            continue
        pairs += align(sorted(mods, key=_natural), sorted(others, key=_natural))
    return pairs


def _pattern(name: str) -> tuple[str, ...]:
    return tuple("#" if p.isdigit() else p for p in name.split("."))


def _natural(mod: tuple[str, Leaves]) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in mod[0].split("."))


def _unique(have: list[tuple[str, Leaves]], want: list[tuple[str, Leaves]]) -> list[tuple[str, str]]:
    by_h: dict[Leaves, list[str]] = {}
    by_w: dict[Leaves, list[str]] = {}
    for name, leaves in have:
        by_h.setdefault(leaves, []).append(name)
    for name, leaves in want:
        by_w.setdefault(leaves, []).append(name)
    return [(h[0], by_w[s][0]) for s, h in by_h.items() if len(h) == 1 and len(by_w.get(s, [])) == 1]


def module_rules(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Regex rules moving each module's direct keys, ordered so that no rule re-moves what an earlier
    one produced (a chain a->b, b->c runs b->c first; a cycle goes through a temporary name)."""
    pending = [(a, b) for a, b in pairs if a != b and a and b]
    out: list[tuple[str, str]] = []
    tmp = 0
    while pending:
        sources = {a for a, _ in pending}
        pick = next((p for p in pending if p[1] not in sources or p[1] == p[0]), None)
        if pick is None:  # a cycle: park one module under a temporary name
            a, b = pending[0]
            parked = f"ckptlint-tmp-{tmp}"
            tmp += 1
            out.append(_rule(a, parked))
            pending[0] = (parked, b)
            continue
        pending.remove(pick)
        out.append(_rule(*pick))
    return out


def _rule(old: str, new: str) -> tuple[str, str]:
    return (f"^{re.escape(old)}\\.(?=[^.]+$)", f"{new}.")
