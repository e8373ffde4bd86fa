"""Text and JSON output of ``ckptlint diff``."""

from __future__ import annotations

import json

from tabulate import tabulate

from ..compat.diff import Diff


def render_diff(d: Diff) -> str:
    lines = [f"--- {d.a}" + (f"  [{'/'.join(map(str, d.paths[0]))}]" if d.paths[0] else ""),
             f"+++ {d.b}" + (f"  [{'/'.join(map(str, d.paths[1]))}]" if d.paths[1] else "")]
    if d.identical:
        lines.append("state_dicts match: same keys, shapes and dtypes")
        return "\n".join(lines)
    for pattern, repl in d.renames:
        lines.append(f"renamed: s/{pattern}/{repl}/")
    rows = [("-", k, "", "") for k in d.removed] + [("+", k, "", "") for k in d.added]
    rows += [("shape", k, str(list(a)), str(list(b))) for k, (a, b) in d.shape_changed.items()]
    rows += [("dtype", k, a, b) for k, (a, b) in d.dtype_changed.items()]
    if rows:
        lines.append(tabulate(rows, headers=("change", "key", "A", "B"), tablefmt="simple"))
    lines.append(f"{len(d.removed)} removed, {len(d.added)} added, {len(d.shape_changed)} shape changes, "
                 f"{len(d.dtype_changed)} dtype changes, {len(d.renames)} renames")
    return "\n".join(lines)


def render_diff_json(d: Diff) -> str:
    return json.dumps(d.to_dict(), indent=2)
