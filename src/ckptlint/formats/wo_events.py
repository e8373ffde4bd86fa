"""TRANSITIONAL: the old ``Inventory.events`` derived from the neutral pickle facts.

The readers record neutral facts (``Inventory.pickles``, ``operations``, ``stops``);
judging them against torch's weights_only unpickler belongs in ``safety/``. Until
safety/weights_only.py reads those facts directly (H6), this module keeps the
``events`` it consumes today. Delete it (and ``Assembler.events``) then.
"""

from __future__ import annotations

from ..inventory import Operation, PickleEvent, PickleStream, StreamStop

_ALLOWED = frozenset({
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
    "LONG_BINPUT", "LONG1", "PROTO", "STOP",
})
_BUILD_OK = frozenset({"object:collections.OrderedDict", "object:torch.Tensor", "object:torch.nn.parameter.Parameter"})


def _event(o: Operation) -> tuple[str, str] | None:
    t = o.target
    cls = t.split(":", 1)[1] if ":" in t else ""
    if o.opcode == "SHORT_BINSTRING":
        return "string", "SHORT_BINSTRING that is not UTF-8"
    if o.opcode == "REDUCE":
        return None if t.startswith("global:") else ("reduce", cls or t)
    if o.opcode == "NEWOBJ":
        return ("newobj-class", cls) if t.startswith("global:") else ("newobj", cls or t)
    if o.opcode == "BUILD":
        if t in _BUILD_OK:
            return None
        return ("build-class", cls) if t.startswith("object:") else ("build", cls or t)
    if o.opcode in ("APPEND", "APPENDS"):
        return ("append-class", cls) if t.startswith("object:") else ("append", cls or t)
    if o.opcode in ("SETITEM", "SETITEMS"):
        return None if t == "object:collections.OrderedDict" else ("setitem", cls or t)
    if o.opcode == "BINPERSID":
        if t == "int" or (t == "tuple" and o.detail in ("storage", "b'storage'")):
            return None
        return "persid", o.detail or t
    return None


def derive(pickles: list[PickleStream], operations: list[Operation], stops: list[StreamStop]) -> list[PickleEvent]:
    out: list[PickleEvent] = []
    for p in pickles:
        out.extend(PickleEvent(p.stream, off, "opcode", name) for name, off in p.first_offsets if name not in _ALLOWED)
    for o in operations:
        ev = _event(o)
        if ev is not None:
            out.append(PickleEvent(o.stream, o.offset, ev[0], ev[1]))
    out.extend(PickleEvent(s.stream, s.offset, "stop", s.reason) for s in stops)
    out.sort(key=lambda e: e.offset)
    return out
