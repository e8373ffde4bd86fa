"""The data model every ckptlint feature reads: what a checkpoint holds, statically.

An :class:`Inventory` is built without executing the file and without reading
tensor bytes. Everything here is plain, immutable data so that analyses stay
pure functions and the JSON form is a direct transcription.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from types import MemberDescriptorType
from typing import Any, TypeVar

from .record import field, field_names, record

R = TypeVar("R")

KeyPath = tuple[Any, ...]
"""Where an object sits inside the checkpoint: dict keys and list indices."""


@record(slots=True)
class GlobalRef:
    """One reference to a Python global (``module.name``) found in a pickle stream.

    ``opcode`` says how it was referenced (GLOBAL, STACK_GLOBAL, INST, OBJ-less
    EXT codes resolve through copyreg and are recorded as ``EXT1``/``EXT2``/``EXT4``).
    """

    module: str
    name: str
    stream: str
    offset: int
    opcode: str
    path: KeyPath | None = None
    """Where the object built from this global sits, when it ends up in the loaded object."""
    written: str | None = None
    """``module.name`` exactly as the stream spells it, when CPython's fix_imports mapping
    (protocol < 3: ``__builtin__`` -> ``builtins`` …) renamed it; else None."""
    torch_resolves: bool = False
    """torch.load's own ``find_class`` (its UnpicklerWrapper: zip ``data.pkl``, the legacy main pickle,
    a tar's ``pickle`` member) returns ``StorageType(name)`` for this storage-type name (``FloatStorage``
    …) whatever the module: torch.load imports nothing here; ``pickle.load`` would."""

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@record(slots=True)
class PickleEvent:
    """A place where torch's weights_only unpickler would object, other than a global.

    ``kind`` is ``opcode`` (unsupported opcode), ``build``/``append``/``setitem``/
    ``newobj``/``reduce`` (a target type it refuses), ``persid`` or ``string``; kinds
    ending in ``-class`` (``newobj-class``, ``build-class``, ``append-class``) name a
    class in ``detail`` and object only when that class is not allowlisted.
    """

    stream: str
    offset: int
    kind: str
    detail: str


@record(slots=True)
class Operation:
    """A neutral fact about one kind of call or container operation in a pickle stream.

    Recorded once per (stream, opcode, target, detail), at its first offset, for
    REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ (``target`` = the callable or class),
    BUILD, APPEND(S), SETITEM(S) on anything but a plain list/dict, ADDITEMS on
    anything but a set (``target`` = the object operated on), PERSID/BINPERSID
    (``target`` = the persistent id's type) and SHORT_BINSTRING that is not UTF-8.

    ``target`` is ``global:mod.name`` (the global object itself: a class or function),
    ``object:mod.name`` (an instance a call built; tensors are ``object:torch.Tensor`` or
    ``object:torch.nn.parameter.Parameter``, numpy dtypes their dtype class) or a builtin
    type name (``list``, ``dict``, ``set``, ``tuple``, ``str``, ``bytes``, ``int``, ``NoneType`` …).
    ``detail``: for BUILD the state's type name, with ``:0``/``:1`` for the truth value of a plain
    value (``tuple:0``, ``dict:1``; ``NoneType``); for PERSID/BINPERSID a tuple pid's first element
    (``storage``; its repr when it is not a str, e.g. ``b'storage'``); for SHORT_BINSTRING
    ``not UTF-8``; else empty.
    """

    stream: str
    offset: int
    opcode: str
    target: str
    detail: str = ""


@record(slots=True)
class StreamStop:
    """Where the static machine stopped inside a stream (CPython raises there too).

    Everything before ``offset`` was interpreted and is in the Inventory (CPython ran it).
    ``limit`` names the :class:`~ckptlint.limits.Limits` field when a bound was hit."""

    stream: str
    offset: int
    reason: str
    limit: str | None = None


@record(slots=True)
class PickleStream:
    """Neutral facts about one parsed pickle stream."""

    stream: str
    protocol: int | None
    """The first PROTO opcode's value; None for a stream without PROTO (protocols 0 and 1)."""
    first_offsets: tuple[tuple[str, int], ...]
    """(opcode name as in pickletools, offset of its first use), in file order: every opcode kind used."""
    end: int | None
    """Offset just past STOP; None when the stream stopped early."""
    opcodes: int = 0
    """Opcodes executed."""


@record(slots=True)
class StorageRecord:
    """A storage as the file declares it (torch persistent id or safetensors span)."""

    key: str
    dtype: str
    nbytes: int | None
    device: str
    entry: str | None = None
    """Where the bytes live: a zip member, a byte range, or None when unknown."""
    record_bytes: int | None = None
    """Bytes the file actually holds for it (zip record size, legacy count * itemsize), when known;
    compare with ``nbytes``, what the persistent id declares."""


@record(slots=True)
class TensorRecord:
    """A tensor the file would rebuild, described from its metadata alone."""

    path: KeyPath
    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None
    storage_offset: int
    storage_key: str | None
    storage_bytes: int | None
    device: str
    is_parameter: bool = False
    requires_grad: bool = False
    layout: str = "strided"
    rebuild: str = ""
    stream: str = ""
    """The pickle stream (or file) the record comes from."""

    @property
    def key(self) -> str:
        """The dotted name of the last dict key on the path (a state_dict key)."""
        return str(self.path[-1]) if self.path else ""

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@record
class FormatFacts:
    """How the file is stored, independent of what it holds."""

    format: str
    file_size: int
    bytes_read: int
    pickle_protocol: int | None = None
    byteorder: str | None = None
    zip_prefix: str | None = None
    zip_entries: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    """Every pickle stream that was parsed, in file order."""
    loaded_streams: tuple[str, ...] = ()
    """The streams ``torch.load`` itself unpickles (others are scanned but never loaded)."""
    opcodes: tuple[str, ...] = ()
    """The distinct pickle opcodes used, across all streams (sorted)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts (safetensors ``__metadata__``, legacy ``sys_info`` …)."""


@record
class Inventory:
    """Everything ckptlint knows about one checkpoint file before loading it."""

    path: str
    facts: FormatFacts
    tensors: tuple[TensorRecord, ...]
    storages: tuple[StorageRecord, ...]
    globals: tuple[GlobalRef, ...]
    structure: Any
    """The object tree with tensors replaced by ``{"__tensor__": index}`` markers;
    other non-JSON values are summarised as ``{"__object__": "module.name", ...}``."""
    metadata: dict[str, dict[str, Any]]
    """OrderedDict ``_metadata`` (module versions), keyed by the container's key path
    joined with ``/`` (``""`` for the top level)."""
    notes: tuple[str, ...] = ()
    events: tuple[PickleEvent, ...] = ()
    """Deprecated, always empty: the readers record neutral facts (``pickles``, ``operations``,
    ``stops``) and safety/ judges them against torch's weights_only rules."""
    anomalies: tuple[str, ...] = ()
    """Places where readers could disagree about the file (duplicate zip names, local vs
    central header mismatches, FRAME boundaries, bytes after STOP …): signs of tampering."""
    pickles: tuple[PickleStream, ...] = ()
    """One entry per parsed pickle stream, in parse order."""
    operations: tuple[Operation, ...] = ()
    """Calls and container operations, first of each kind per stream (neutral facts)."""
    stops: tuple[StreamStop, ...] = ()
    """Where reading stopped before a stream's end (or a bound was hit); empty when every stream was read."""

    @property
    def format(self) -> str:
        return self.facts.format

    def shared_storages(self) -> dict[str, list[KeyPath]]:
        """Storage keys referenced by more than one tensor path (views, tied weights)."""
        keys = [t.storage_key for t in self.tensors]
        nones = keys.count(None)
        if len(set(keys)) - (nones > 0) == len(keys) - nones:  # no key twice: nothing shared (100,000s of tensors)
            return {}
        seen: set[str] = set()
        shared: set[str] = set()
        for t in self.tensors:
            key = t.storage_key
            if key is not None:
                if key in seen:
                    shared.add(key)
                else:
                    seen.add(key)
        by_key: dict[str, list[KeyPath]] = {}
        if shared:  # one list per shared storage only (files hold 100,000s of storages, few shared)
            for t in self.tensors:
                if t.storage_key in shared:
                    by_key.setdefault(t.storage_key, []).append(t.path)
        return by_key

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented in docs/inventory-json.md."""
        from dataclasses import asdict  # records are dataclasses to this module (ckptlint.record)

        facts = asdict(self.facts)
        facts["zip_entries"] = list(self.facts.zip_entries)
        facts["streams"] = list(self.facts.streams)
        facts["opcodes"] = list(self.facts.opcodes)
        facts["loaded_streams"] = list(self.facts.loaded_streams)
        return {
            "path": self.path,
            "format": self.format,
            "facts": facts,
            "tensors": [_tensor_dict(t) for t in self.tensors],
            "storages": [asdict(s) for s in self.storages],
            "shared_storages": {k: [list(p) for p in v] for k, v in self.shared_storages().items()},
            "globals": [
                {"module": g.module, "name": g.name, "stream": g.stream, "offset": g.offset, "opcode": g.opcode,
                 "path": None if g.path is None else list(g.path), "written": g.written,
                 "torch_resolves": g.torch_resolves}
                for g in self.globals
            ],
            "events": [asdict(e) for e in self.events],
            "pickles": [{"stream": p.stream, "protocol": p.protocol, "end": p.end, "opcodes": p.opcodes,
                         "first_offsets": dict(p.first_offsets)} for p in self.pickles],
            "operations": [asdict(o) for o in self.operations],
            "stops": [asdict(s) for s in self.stops],
            "anomalies": list(self.anomalies),
            "metadata": self.metadata,
            "structure": self.structure,
            "notes": list(self.notes),
        }


def _tensor_dict(t: TensorRecord) -> dict[str, Any]:
    # Written out rather than dataclasses.asdict: this runs once per tensor (100k+ in big files).
    return {
        "path": list(t.path), "dtype": t.dtype, "shape": list(t.shape),
        "stride": None if t.stride is None else list(t.stride), "storage_offset": t.storage_offset,
        "storage_key": t.storage_key, "storage_bytes": t.storage_bytes, "device": t.device,
        "is_parameter": t.is_parameter, "requires_grad": t.requires_grad, "layout": t.layout,
        "rebuild": t.rebuild, "stream": t.stream,
    }


def slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...] | None:
    """The ``__set__`` of each field's slot descriptor, in field order; None where a record of ``cls``
    cannot be made by setting its fields alone (not a record, a field that is not a slot, a
    ``__post_init__``)."""
    found = _SETTERS.get(cls, ())
    if found == ():
        found = None
        names = field_names(cls)
        if names is not None and not hasattr(cls, "__post_init__"):
            slots = [cls.__dict__.get(name) for name in names]
            if all(isinstance(s, MemberDescriptorType) for s in slots):
                found = tuple(s.__set__ for s in slots)  # type: ignore[union-attr]
        _SETTERS[cls] = found
    return found


def records_from_columns(cls: type[R], columns: Iterable[Sequence[Any]]) -> tuple[R, ...]:
    """Records of a frozen slotted dataclass from one sequence per field (field order, equal lengths): made
    without ``__init__``, as unpickling makes them, and given their fields by the slots' descriptors one
    field across all records at a time. A frozen ``__init__`` sets each field through ``object.__setattr__``:
    on 20,000 tensors this is several times cheaper, and the records are equal (tests/test_inventory_rows.py)."""
    setters = slot_setters(cls)
    if setters is None:
        raise TypeError(f"{cls.__name__}: not a slotted dataclass whose fields alone make a record")
    columns = tuple(columns)
    if not columns:
        return ()
    made: list[Any] = list(map(object.__new__, repeat(cls, len(columns[0]))))
    for setter, column in zip(setters, columns, strict=True):
        if len(column) != len(made):
            raise ValueError(f"{cls.__name__}: columns of different lengths")
        deque(map(setter, made, column), maxlen=0)
    return tuple(made)


_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...] | None] = {}
