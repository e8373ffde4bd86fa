"""Plain-text rendering of an :class:`~ckptlint.inventory.Inventory` (``ckptlint inspect``).

One table row per tensor record, every row printed, then a short summary of the
file. Large inventories bypass tabulate's per-cell work with a formatter that
produces the same layout, so 100k tensors still print in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..inventory import Inventory, TensorRecord

HEADERS = ("key path", "dtype", "shape", "device", "storage key", "storage bytes", "param")
_ALIGN = ("left", "left", "left", "left", "left", "right", "left")
PATH_SEP = " / "
FAST_TABLE_ROWS = 2000
"""Above this many rows the table is laid out by :func:`fast_table` instead of tabulate."""


def clean(value: Any) -> str:
    """``str(value)`` made safe for a terminal: control characters, lone surrogates and
    edge whitespace (which could hide or forge output) are shown escaped."""
    s = str(value)
    if s and s.isprintable() and s == s.strip():
        return s
    return repr(s)


def key_path(path: Sequence[Any]) -> str:
    """``("state_dict", "layer1.0.conv1.weight")`` -> ``state_dict / layer1.0.conv1.weight``."""
    if not path:
        return "<root>"
    return PATH_SEP.join(clean(p) for p in path)


def _param(t: TensorRecord) -> str:
    if not t.is_parameter:
        return "grad" if t.requires_grad else ""
    return "param+grad" if t.requires_grad else "param"


def tensor_rows(inv: Inventory) -> list[tuple[str, ...]]:
    return [
        (
            key_path(t.path),
            clean(t.dtype),
            "[" + ", ".join(str(s) for s in t.shape) + "]",
            clean(t.device),
            "-" if t.storage_key is None else clean(t.storage_key),
            "?" if t.storage_bytes is None else str(t.storage_bytes),
            _param(t),
        )
        for t in inv.tensors
    ]


def fast_table(rows: Sequence[Sequence[str]], headers: Sequence[str], colalign: Sequence[str]) -> str:
    """The layout of ``tabulate(..., tablefmt="simple", disable_numparse=True)`` for
    cells that are already plain strings without edge whitespace."""
    widths = [len(h) + 2 for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            n = len(cell)
            if n > widths[i]:
                widths[i] = n

    def line(cells: Iterable[str]) -> str:
        parts = [c.rjust(w) if a == "right" else c.ljust(w) for c, w, a in zip(cells, widths, colalign, strict=False)]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def tensor_table(inv: Inventory) -> str:
    rows = tensor_rows(inv)
    if not rows:
        return "(no tensors)"
    if len(rows) > FAST_TABLE_ROWS:
        return fast_table(rows, HEADERS, _ALIGN)
    from tabulate import tabulate  # here, not at the top: check_text imports clean() from this module

    return tabulate(rows, headers=HEADERS, tablefmt="simple", disable_numparse=True, colalign=_ALIGN)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{n} B ({value:.1f} {unit})"
    return f"{n} B"  # pragma: no cover


def unique_globals(inv: Inventory) -> list[str]:
    """``module.name`` of every global referenced, once each, in first-seen order."""
    return list(dict.fromkeys(g.qualname for g in inv.globals))


def summary_rows(inv: Inventory) -> list[tuple[str, str]]:
    facts = inv.facts
    shared = inv.shared_storages()
    known = [s.nbytes for s in inv.storages if s.nbytes is not None]
    total = _size(sum(known)) if known else "?"
    if known and len(known) < len(inv.storages):
        unknown = len(inv.storages) - len(known)
        total += f" ({unknown} storage{'' if unknown == 1 else 's'} of unknown size)"
    devices = sorted({t.device for t in inv.tensors} | {s.device for s in inv.storages})
    rows = [
        ("format", clean(inv.format)),
        ("file size", _size(facts.file_size)),
        ("bytes read", _size(facts.bytes_read)),
        ("pickle protocol", "-" if facts.pickle_protocol is None else str(facts.pickle_protocol)),
        ("tensors", str(len(inv.tensors))),
        ("storages", str(len(inv.storages))),
        ("total storage bytes", total),
        ("shared storages", str(len(shared))),
        ("devices", ", ".join(clean(d) for d in devices) or "-"),
    ]
    return rows


def render_inventory(inv: Inventory) -> str:
    """The full text report for one file: header, tensor table, summary."""
    from tabulate import tabulate

    out = [f"{clean(inv.path)}  ({clean(inv.format)})", "", tensor_table(inv), ""]
    out.append(tabulate(summary_rows(inv), tablefmt="plain", disable_numparse=True))
    shared = inv.shared_storages()
    for key, paths in shared.items():
        out.append(f"  storage {clean(key)}: " + ", ".join(key_path(p) for p in paths))
    globals_ = unique_globals(inv)
    out.append(f"globals referenced ({len(globals_)}):" + ("" if globals_ else " none"))
    out.extend(f"  {clean(g)}" for g in globals_)
    anomalies = getattr(inv, "anomalies", ())
    if anomalies:
        out.append(f"anomalies ({len(anomalies)}):")
        out.extend(f"  {clean(a)}" for a in anomalies)
    out.append(f"notes ({len(inv.notes)}):" + ("" if inv.notes else " none"))
    out.extend(f"  {clean(n)}" for n in inv.notes)
    return "\n".join(out)
