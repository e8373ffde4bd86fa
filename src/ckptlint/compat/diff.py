"""``ckptlint diff A B``: what changed between two checkpoints' state_dicts."""

from __future__ import annotations

from typing import Any

from ..inventory import Inventory, TensorRecord
from ..record import record
from .align import module_rules
from .fixes import _best_prefix_renames, module_renames, rename_key
from .unwrap import find_state_dict


@record
class Diff:
    a: str
    b: str
    paths: tuple[list[Any], list[Any]]
    added: list[str]
    removed: list[str]
    shape_changed: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    dtype_changed: dict[str, tuple[str, str]]
    renames: list[tuple[str, str]]
    """Prefix or module renames that map A's keys onto B's (inferred from names and shapes)."""

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.shape_changed or self.dtype_changed or self.renames)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "state_dict_paths": [self.paths[0], self.paths[1]],
                "added": self.added, "removed": self.removed,
                "shape_changed": {k: [list(x), list(y)] for k, (x, y) in self.shape_changed.items()},
                "dtype_changed": {k: [x, y] for k, (x, y) in self.dtype_changed.items()},
                "renames": [list(r) for r in self.renames], "identical": self.identical}


def diff(a: Inventory, b: Inventory, key_a: tuple[Any, ...] | None = None,
         key_b: tuple[Any, ...] | None = None) -> Diff:
    sa = find_state_dict(a, key_a)
    sb = find_state_dict(b, key_b)
    ta = {k: v for k, v in sa.entries.items() if isinstance(v, TensorRecord)}
    tb = {k: v for k, v in sb.entries.items() if isinstance(v, TensorRecord)}
    renames = _best_prefix_renames(dict(ta), tb)
    renamed = {rename_key(k, renames): v for k, v in ta.items()}
    renames += module_rules(module_renames(renamed, tb, sa.ordered and sb.ordered))
    mapped = {rename_key(k, renames): v for k, v in ta.items()}
    added = [k for k in tb if k not in mapped]
    removed = [k for k in ta if rename_key(k, renames) not in tb]
    shape = {k: (tuple(v.shape), tuple(tb[k].shape)) for k, v in mapped.items()
             if k in tb and tuple(v.shape) != tuple(tb[k].shape)}
    dtype = {k: (v.dtype, tb[k].dtype) for k, v in mapped.items() if k in tb and v.dtype != tb[k].dtype}
    return Diff(a.path, b.path, (list(sa.path), list(sb.path)), added, removed, shape, dtype, renames)
