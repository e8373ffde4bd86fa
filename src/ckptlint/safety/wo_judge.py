"""Judge the reader's neutral pickle facts the way torch's weights_only unpickler does.

Input: the globals, opcodes and operations the static reader recorded for the
streams ``torch.load`` reads, plus the zip records torch checks around them.
Output: every blocker, sorted the way torch meets them (stream order, then byte
offset), so the first is the error torch raises. Each rule names the line of
``torch/_weights_only_unpickler.py`` (``Unpickler.load``) or ``torch/serialization.py``
(``_load``) it mirrors; the constants live in :mod:`.torch_rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..inventory import GlobalRef, Inventory
from ..results import Blocker
from ..vocab import Category
from .allowlist import BLOCKLISTED_MODULES
from .classify import classify
from .torch_rules import (
    APPEND_TYPES,
    BUILD_ALWAYS,
    BYTEORDER_VALUES,
    NEWOBJ_ALWAYS,
    SETITEM_TYPES,
    WEIGHTS_ONLY_OPCODES,
    allowed_kind,
    torch_global_name,
    torch_name_as_written,
)

# At one offset torch fails on the opcode itself before anything it would build.
_RANK = {"opcode": 0, "format": 1, "global": 2, "structure": 3}
_END = 1 << 62

Placed = tuple[int, int, int, Blocker]


def torch_name(g: GlobalRef) -> str:
    """The full path torch looks up for a recorded global (its own protocol-2 mapping, any protocol)."""
    written = g.written
    if written:
        return torch_name_as_written(str(written), g.qualname)
    return torch_global_name(g.module, g.name)


def pickle_blockers(inv: Inventory, allowed: frozenset[str], user_allowed: frozenset[str],
                    categories: Mapping[str, Category]) -> list[Blocker]:
    """Every blocker in the streams torch.load reads, in torch's order."""
    # legacy files: the streams only the weights_only unpickler reads, on past a PROTO > 5 (formats/legacy.py)
    later = (inv.facts.extra or {}).get("weights_only_streams") or []
    order = {s: i for i, s in enumerate([*inv.facts.loaded_streams, *later])}
    # torch's pure-Python unpickler only warns on PROTO > 5 where CPython stops; the reader then also reads
    # such a stream on as "<stream>#weights_only", which is what weights_only=True unpickles
    readings = {p.stream for p in inv.pickles}
    proto_only = {st.stream for st in inv.stops if st.stream in order and "unsupported pickle protocol" in st.reason
                  and f"{st.stream}#weights_only" in readings}
    for stream in proto_only:
        order[f"{stream}#weights_only"] = order[stream]
    placed: list[Placed] = []
    blocked_names: set[str] = set()
    for g in inv.globals:
        if g.stream not in order:
            continue
        name = torch_name(g) if g.opcode == "GLOBAL" else g.qualname
        module = name[: -len(g.name) - 1] if name.endswith("." + g.name) else g.module
        if g.opcode == "GLOBAL" and name in allowed and module not in BLOCKLISTED_MODULES:
            continue
        cat = categories.get(g.qualname) or classify(name, module, allowed=allowed)
        blocked_names.add(name)
        placed.append((order[g.stream], g.offset, _RANK["global"],
                       Blocker("global", name, g.stream, g.offset, cat)))
    placed += _from_operations(inv, order, allowed, user_allowed, blocked_names)
    for stop in inv.stops:
        if stop.stream in order and not (stop.stream in proto_only and "unsupported pickle protocol" in stop.reason):
            # where the reader stopped, torch.load raises too; at one of ckptlint's own bounds the answer is
            # "not proven loadable" and the blocker says which bound to raise
            detail = (f"ckptlint stopped at its {stop.limit} bound, before the end of the stream "
                      "(raise the limit to get torch's answer)" if stop.limit
                      else f"the pickle cannot be read past here: {stop.reason}")
            placed.append((order[stop.stream], stop.offset, _RANK["format"],
                           Blocker("format", detail, stop.stream, stop.offset)))
    placed.sort(key=lambda t: (t[0], t[1], t[2]))
    return dedupe(b for *_, b in placed)


def _class_blocker(what: str, cls: str, stream: str, offset: int, allowed: frozenset[str]) -> Blocker:
    module = cls.rsplit(".", 1)[0]
    return Blocker("structure", f"{what} of {cls}", stream, offset, classify(cls, module, allowed=allowed), cls)


def _from_operations(inv: Inventory, order: Mapping[str, int], allowed: frozenset[str],
                     user_allowed: frozenset[str], blocked_names: set[str]) -> list[Placed]:
    out: list[Placed] = []
    for p in inv.pickles:
        if p.stream not in order:
            continue
        for opname, offset in p.first_offsets:
            if opname not in WEIGHTS_ONLY_OPCODES:
                out.append((order[p.stream], offset, _RANK["opcode"], Blocker("opcode", opname, p.stream, offset)))
    for op in inv.operations:
        if op.stream not in order:
            continue
        b = judge_operation(op.opcode, str(op.target), op.detail, op.stream, op.offset,
                            allowed, user_allowed, blocked_names)
        if b is not None:
            out.append((order[op.stream], op.offset, _RANK[b.kind], b))
    return out


def judge_operation(opcode: str, target: str, detail: Any, stream: str, offset: int, allowed: frozenset[str],
                    user_allowed: frozenset[str], blocked_names: set[str]) -> Blocker | None:
    """One recorded operation against Unpickler.load's rule for its opcode (None: torch accepts it)."""
    kind, _, name = target.partition(":")
    if kind not in ("global", "object"):
        kind, name = "builtin", f"builtins.{target}"
    if opcode == "REDUCE":
        # REDUCE: `func not in _get_allowed_globals().values() and not in user values` -> refuse.
        # A global's own GLOBAL already said whether it is allowed.
        if kind == "global":
            if name in allowed and allowed_kind(name) == "value":
                return Blocker("structure", f"REDUCE calls {name}, which is not callable", stream, offset)
            return None
        return Blocker("structure", f"REDUCE calls a {target}, not an allowlisted function", stream, offset)
    if opcode == "NEWOBJ":
        # NEWOBJ: nn.Parameter, or a class in the allowlist values.
        if kind == "global" and name in allowed and allowed_kind(name) != "class":
            return Blocker("structure", f"NEWOBJ of {name}, which is not a class", stream, offset)
        if kind == "global" and (name in NEWOBJ_ALWAYS or name in allowed or name in blocked_names):
            return None
        return _class_blocker("NEWOBJ", name, stream, offset, allowed)
    if opcode == "BUILD":
        # BUILD: type(inst) is Tensor / Parameter / OrderedDict, or in the allowlist values.
        if kind == "object" and (name in BUILD_ALWAYS or name in allowed or name in blocked_names):
            return None
        if kind == "builtin" and name in allowed and (str(detail) == "NoneType" or str(detail).endswith(":0")):
            return None  # set/bytearray/complex: no __setstate__, a falsy (None or empty) state updates nothing
        return _class_blocker("BUILD", name, stream, offset, allowed)
    if opcode in ("APPEND", "APPENDS"):
        # _check_append_target: a plain list, or a list subclass the user allowlisted.
        if name in APPEND_TYPES or (kind == "object" and name in user_allowed):
            return None
        return _class_blocker(opcode, name, stream, offset, allowed)
    if opcode in ("SETITEM", "SETITEMS"):
        # _check_set_item_target: type in [dict, OrderedDict, Counter], exactly.
        if name in SETITEM_TYPES and kind != "global":
            return None
        return _class_blocker(opcode, name, stream, offset, allowed)
    if opcode == "BINPERSID":
        # BINPERSID: a tuple whose first item decodes to "storage" (or an int, which torch.load's
        # own persistent_load then refuses: it asserts a tuple).
        if target == "tuple" and str(detail).strip("b'\"") == "storage":
            return None
        return Blocker("structure", f"persistent id of type {target} ({detail})", stream, offset)
    if opcode == "SHORT_BINSTRING":
        # torch.load decodes SHORT_BINSTRING with encoding="utf-8", strictly.
        return Blocker("structure", "SHORT_BINSTRING that is not UTF-8", stream, offset)
    return None  # other opcodes are refused as opcodes


def zip_record_blockers(inv: Inventory) -> list[Blocker]:
    """torch.load's checks on a zip's records before it unpickles (``_load``): byteorder, alignment."""
    out: list[Blocker] = []
    extra = inv.facts.extra or {}
    refuses = extra.get("torch_refuses")
    if refuses:
        # the zip reader drove miniz as torch.load does and it refused the archive
        return [Blocker("format", f"torch.load raises: {refuses}")]
    raw = extra.get("byteorder_record")
    value = raw if isinstance(raw, str) else inv.facts.byteorder
    if value is not None and value not in BYTEORDER_VALUES:
        # `if byteorderdata not in [b"little", b"big"]: raise ValueError("Unknown endianness type")`
        out.append(Blocker("format", f"byteorder record {value!r} is neither 'little' nor 'big' "
                                     "(torch: Unknown endianness type)", "byteorder"))
    raw_align = extra.get(".storage_alignment_record")
    align = raw_align if isinstance(raw_align, str) else extra.get(".storage_alignment")
    if isinstance(align, str):
        try:
            # `storage_alignment = int(zip_file.get_record(".storage_alignment"))`: int() of the record's bytes
            # (bytes, not str: str's int() would also strip non-ASCII whitespace such as \xa0)
            int(align.encode("latin-1", "replace"))
        except ValueError:
            out.append(Blocker("format", f".storage_alignment record {align!r} is not an integer",
                               ".storage_alignment"))
    return out


def storage_blockers(inv: Inventory) -> list[Blocker]:
    """torch.load's check on each storage record as the pickle loads it: present, and exactly the
    declared size (``get_storage_from_record`` -> ``getRecord``)."""
    out: list[Blocker] = []
    entries = set(inv.facts.zip_entries)
    for s in inv.storages:
        if s.entry is None:
            continue
        rb = s.record_bytes
        if s.entry not in entries:
            out.append(Blocker("format", f"storage record {s.entry} is missing (torch: file is corrupted)",
                               s.entry))
        elif rb is not None and s.nbytes is not None and rb != s.nbytes:
            # getRecord: TORCH_CHECK(record size == numel * element size)
            out.append(Blocker("format", f"storage record {s.entry} holds {rb} bytes, the pickle declares "
                                         f"{s.nbytes} (torch: record size does not match)", s.entry))
    return out


def legacy_storage_blockers(inv: Inventory) -> list[Blocker]:
    """The legacy reader's persistent_load takes ``storage_type.dtype``: torch.UntypedStorage has none
    (what torch.save writes for uint16/32/64 storages in the legacy format), so loading fails."""
    if inv.format != "torch-legacy":
        return []
    loaded = set(inv.facts.loaded_streams) | set((inv.facts.extra or {}).get("weights_only_streams") or [])
    return [Blocker("structure", "an UntypedStorage in a legacy-format file (torch: UntypedStorage has no dtype)",
                    g.stream, g.offset) for g in inv.globals
            if g.stream in loaded and g.qualname in ("torch.UntypedStorage", "torch.storage.UntypedStorage")][:1]


def dedupe(blockers: Iterable[Blocker]) -> list[Blocker]:
    seen: set[tuple[str, str]] = set()
    out: list[Blocker] = []
    for b in blockers:
        if (b.kind, b.detail) not in seen:
            seen.add((b.kind, b.detail))
            out.append(b)
    return out
