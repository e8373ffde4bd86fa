"""Text and JSON output of ``ckptlint diff``."""

from __future__ import annotations

import json

from tabulate import tabulate

from ..compat.diff import Diff
from .inventory_text import clean


def _n(k: int, word: str, plural: str) -> str:
    return f"{k} {word if k == 1 else plural}"


def render_diff(d: Diff) -> str:
    """Keys and paths from the files are escaped as ``inspect`` does (no terminal control, no forged rows)."""
    lines = [f"--- {clean(d.a)}" + (f"  [{'/'.join(map(clean, d.paths[0]))}]" if d.paths[0] else ""),
             f"+++ {clean(d.b)}" + (f"  [{'/'.join(map(clean, d.paths[1]))}]" if d.paths[1] else "")]
    if d.identical:
        lines.append("state_dicts match: same keys, shapes and dtypes")
        return "\n".join(lines)
    for pattern, repl in d.renames:
        lines.append(f"renamed: s/{clean(pattern)}/{clean(repl)}/")
    rows = [("-", clean(k), "", "") for k in d.removed] + [("+", clean(k), "", "") for k in d.added]
    rows += [("shape", clean(k), str(list(a)), str(list(b))) for k, (a, b) in d.shape_changed.items()]
    rows += [("dtype", clean(k), clean(a), clean(b)) for k, (a, b) in d.dtype_changed.items()]
    if rows:
        lines.append(tabulate(rows, headers=("change", "key", "A", "B"), tablefmt="simple", disable_numparse=True))
    lines.append(f"{len(d.removed)} removed, {len(d.added)} added, "
                 f"{_n(len(d.shape_changed), 'shape change', 'shape changes')}, "
                 f"{_n(len(d.dtype_changed), 'dtype change', 'dtype changes')}, "
                 f"{_n(len(d.renames), 'rename', 'renames')}")
    return "\n".join(lines)


def render_diff_json(d: Diff) -> str:
    return json.dumps(d.to_dict(), indent=2)
