"""The JSON document of ``ckptlint inspect --format json`` (schema: schemas/inventory.schema.json).

``{"version": 1, "files": [...]}``: one entry per file named on the command
line, in order; a readable file gives ``Inventory.to_dict()`` plus
``"error": null``, an unreadable one ``{"path", "error", "format"}``.
The output is strict JSON: non-finite floats become the strings ``"nan"``,
``"inf"`` and ``"-inf"``, and anything else JSON cannot hold is summarised.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..inventory import Inventory

VERSION = 1


def file_entry(inv: Inventory) -> dict[str, Any]:
    d = inv.to_dict()
    d["error"] = None
    return d


def error_entry(path: str, reason: str, format: str | None) -> dict[str, Any]:
    return {"path": path, "error": reason, "format": format}


def document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": VERSION, "files": entries}


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON; the slow sanitising walk runs only when the fast path refuses.

    May raise RecursionError for absurdly deep data (callers turn that into a
    per-file error)."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_sanitise(obj), indent=indent, allow_nan=False)


def join_document(encoded_entries: list[str]) -> str:
    """The document from entries already encoded by :func:`dumps` (indent 2): byte for
    byte ``dumps(document(entries))``, without re-encoding each entry."""
    if not encoded_entries:
        return dumps(document([]))
    body = ",\n".join("    " + e.replace("\n", "\n    ") for e in encoded_entries)
    return f'{{\n  "version": {VERSION},\n  "files": [\n{body}\n  ]\n}}'


def _sanitise(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {_key(k): _sanitise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitise(v) for v in obj]
    qualname = getattr(obj, "qualname", None)
    return {"__object__": qualname if isinstance(qualname, str) else type(obj).__name__}


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, float) and not math.isfinite(k):
        return str(_sanitise(k))
    if k is None or isinstance(k, (bool, int, float)):
        return json.dumps(k)
    return repr(k)
