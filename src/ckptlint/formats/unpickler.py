"""A static pickle interpreter: walks the opcodes, never imports, never calls.

Every global the stream names becomes a :class:`Global` stand-in and every call
a :class:`Call` record; ``torchcalls`` interprets a fixed set of torch rebuild
functions and codecs. The stream is read contiguously, the way CPython's C
unpickler (what ``pickle.load`` and ``torch.load(weights_only=False)`` run)
reads it: ``load_frame`` in ``Modules/_pickle.c`` only checks that the frame's
bytes are there and rewinds, so an opcode may straddle a frame end and a FRAME
may start inside another. The machine stops exactly where CPython raises and
keeps everything it saw up to that point (CPython ran it).

It records neutral facts, never a verdict: the first offset of each opcode
kind, the targets of calls and of BUILD/APPEND/SETITEM (``operations``), the
globals with their offsets. Judging them (torch's weights_only rules) is
``safety/``'s job.

Why not subclass ``pickle.Unpickler``: its C memo is sized by the largest PUT
index (one opcode can ask for gigabytes), it reports no byte offsets, and we
would still have to vet every opcode. A dispatch table over bytes is small; the loop over it
(``pickleloop.run``) runs the opcodes torch.save emits inline and hands every other case to these handlers.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
from collections.abc import Callable, Sized
from typing import Any

from ..errors import FormatError, LimitExceeded, TruncatedPickle
from ..inventory import GlobalRef
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .knownbuild import build_error, call_error, state_detail
from .knowncalls import known_protocols
from .nestedbytes import NESTED_LOADERS, nested_payloads
from .pickleitems import BUILTIN_VALUES as _BUILTIN_VALUES
from .pickleitems import ItemOps
from .pickleloop import run
from .pickleops import I32, OPCODE_NAMES, OPCODES, U16, U32, U64
from .stubs import Call, Global, ODict, Storage, TensorStub, describe, short_repr
from .torchcalls import interpret_call, storage_from_pid, unrestorable_note

__all__ = [
    "Call", "FormatError", "Global", "ODict", "PersistentLoad", "StaticUnpickler", "Storage", "TensorStub",
    "TruncatedPickle", "interpret_call", "map_py2_name", "storage_from_pid",
]

PersistentLoad = Callable[[Any], Any]

_STOP = object()
_REFS_PER_NAME = 8
"""GlobalRefs recorded per (name, opcode) in one stream; later repeats are counted, not kept."""
_MEMO_ALLOC_WARN = 1 << 24
"""C memo indexes above this make CPython allocate a pointer array of 2*index slots."""


def map_py2_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names in protocol <= 2 pickles, renamed as the C unpickler's find_class does (fix_imports)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class StaticUnpickler(ItemOps):
    """Interpret one pickle stream starting at ``start`` in ``data``.

    ``persistent_load`` receives each persistent id and returns what stands for
    it (torch storages). After :meth:`load` (or after it raised), ``globals``,
    ``first_offsets``, ``operations``, ``protocol``, ``end`` and ``anomalies``
    describe what the stream did up to where it ended or stopped.
    """

    def __init__(self, data: bytes, stream: str, *, start: int = 0,
                 persistent_load: PersistentLoad | None = None,
                 limits: Limits = DEFAULT_LIMITS, budget: Budget | None = None,
                 file_framing: bool = False, encoding: str = "utf-8") -> None:
        self.data = data
        self.encoding = encoding
        self.any_protocol = False
        """Read on past a PROTO above 5, as torch's pure-Python weights_only unpickler does (it only
        warns); CPython's C unpickler raises there."""
        self.file_framing = file_framing
        """Read FRAMEs as the C unpickler reads a file without ``peek`` (``io.BytesIO``: what
        torch.load hands it for a zip member); otherwise as it reads bytes (``pickle.loads``),
        contiguously. The two differ only for opcodes that straddle a frame's end."""
        self._buf_end = len(data)
        self._fp = len(data)
        self._framed = False
        self.non_ascii_strings = False
        """A STRING-family opcode held non-ASCII bytes (pickle.load and torch.load decode them differently)."""
        self.frame_irregular = False
        """A FRAME that readers split differently (straddled, nested, overrun)."""
        self.stream = stream
        self.pos = start
        self.start = start
        self.limits = limits
        self.budget = budget if budget is not None else Budget(limits)
        self.persistent_load = persistent_load
        self.globals: list[GlobalRef] = []
        self._global_counts: dict[tuple[str, str, str, str | None], int] = {}
        self._first: dict[int, int] = {}
        self.operations: list[tuple[int, str, str, str]] = []
        """(offset, opcode, target, detail), first of each kind; see ``inventory.Operation``."""
        self._op_keys: set[tuple[Any, ...]] = set()
        self.protocol: int | None = None
        """The first PROTO's value (None without one)."""
        self.proto = 0
        """The protocol in force (the last PROTO), which decides fix_imports name mapping."""
        self.anomalies: list[str] = []
        self.notes: list[str] = []
        self._restored: set[str] = set()
        self.end = start
        self.max_memo_index = -1
        self._stack: list[Any] = []
        self._metastack: list[list[Any]] = []
        self._memo: list[Any] | dict[int, Any] = []
        """A list while the stream writes each next index (what pickle writes), else a dict."""
        self._memo_left = self.budget.limits.max_memo - self.budget.memo
        self._memo_cap = min(self._memo_left, self.limits.max_memo_index + 1, _MEMO_ALLOC_WARN + 1)
        """The list memo grows only below this (past it, ``_memo_put``'s checks apply)."""
        self._op_start = start
        self._frame_end: int | None = None
        self.count = 0
        """Opcodes executed (charged to the budget when the stream ends or stops)."""
        self.nested: list[tuple[int, bytes]] = []
        """Byte strings handed to a loader (``pickle.loads`` …): pickles inside the pickle."""

    @property
    def first_offsets(self) -> dict[str, int]:
        """Opcode name -> offset of its first use in this stream, in stream order."""
        return {OPCODE_NAMES[c] or "": o for c, o in self._first.items()}

    @property
    def opcodes(self) -> set[str]:
        """Names of the opcodes the stream used."""
        return {OPCODE_NAMES[c] or "" for c in self._first}

    @property
    def stop_offset(self) -> int:
        """Where the last opcode started: after an error, where CPython raises."""
        return self._op_start

    def _op(self, opcode: str, obj: Any, detail: str = "") -> None:
        """Record ``opcode`` on ``obj`` once per (opcode, target, detail); cheap when already seen."""
        t = type(obj)
        if t is Global:
            key: tuple[Any, ...] = (opcode, obj.module, obj.name, detail)
        elif t is TensorStub:
            key = (opcode, t, obj.is_parameter, detail)
        elif t is Call or t is ODict:
            key = (opcode, describe(obj), detail)
        else:
            key = (opcode, t, detail)
        if key not in self._op_keys and len(self._op_keys) < 10_000:
            self._op_keys.add(key)
            self.operations.append((self._op_start, opcode, describe(obj), detail))

    def _odd_string(self) -> None:
        self._op("SHORT_BINSTRING", b"", "not UTF-8")

    # -- the loop
    def load(self) -> Any:
        try:
            return run(self, _DISPATCH, _STOP)
        finally:
            self.budget.opcodes += self.count
            self.budget.memo += len(self._memo)

    # -- protocol, framing, marks
    def op_PROTO(self) -> None:
        p = self._read(1)[0]
        if p > 5 and not self.any_protocol:
            raise self._fail(f"unsupported pickle protocol {p}")
        self.proto = p
        if self.protocol is None:
            self.protocol = p

    def op_FRAME(self) -> None:
        # load_frame: the frame's bytes must all be there; then it rewinds and reads on as usual.
        size = U64.unpack(self._read(8))[0]
        if self._frame_end is not None and self._op_start < self._frame_end:
            self.frame_irregular = True
            self.anomalies.append(f"FRAME at byte {self._op_start} starts inside the previous frame")
        if size > (1 << 63) - 1:
            raise self._fail("FRAME length exceeds the maximum size")
        if self.file_framing:
            if self._framed and self.pos + size <= self._buf_end:
                return  # the frame is already in the buffer: _Unpickler_Read's fast path, then a rewind
            start = self._fp if self._framed else self.pos
            if start != self.pos:
                self.frame_irregular = True
            if start + size > len(self.data):
                self.frame_irregular = True
                raise TruncatedPickle(f"pickle FRAME at byte {self._op_start} runs past the end ({self.stream})")
            self.pos = start
            self._fp = self._buf_end = start + size
            self._framed = True
            self._frame_end = start + size
            return
        if self.pos + size > len(self.data):
            self.frame_irregular = True
            raise TruncatedPickle(f"pickle FRAME at byte {self._op_start} runs past the end ({self.stream})")
        self._frame_end = self.pos + size

    def op_STOP(self) -> object:
        if not self._stack:
            raise self._fail("pickle stack underflow at STOP")
        return _STOP

    def op_MARK(self) -> None:
        if len(self._metastack) >= self.limits.max_depth:
            raise LimitExceeded("max_depth", self.limits.max_depth,
                                f"pickle nesting (open MARKs) at byte {self._op_start}, {self.stream}")
        self._metastack.append(self._stack)
        self._stack = []

    # -- memo
    def _memo_put(self, idx: int, value: Any) -> None:
        memo = self._memo
        if type(memo) is list:
            if idx < len(memo):
                memo[idx] = value
                return
            if idx == len(memo) and idx < self._memo_cap:
                memo.append(value)
                return
            # any other index: the dict, with the list's entries counted as the dict counts them
            self._memo_left -= len(memo)
            self.max_memo_index = len(memo) - 1
            memo = self._memo = dict(enumerate(memo))
        if idx > self.limits.max_memo_index:
            raise LimitExceeded("max_memo_index", self.limits.max_memo_index,
                                f"pickle memo index {idx} at byte {self._op_start}, {self.stream}")
        if idx not in memo:
            self._memo_left -= 1
            if self._memo_left < 0:
                self.budget.charge_memo(len(memo) + 1)
            if idx > self.max_memo_index:
                self.max_memo_index = idx
                if idx > _MEMO_ALLOC_WARN:
                    self.anomalies.append(
                        f"memo index {idx} at byte {self._op_start}: CPython's C unpickler allocates "
                        f"{idx * 16 >> 20} MiB for its memo here and may fail")
        memo[idx] = value

    def _memo_get(self, idx: int) -> Any:
        try:
            return self._memo[idx]
        except LookupError:
            raise self._fail(f"pickle memo key {idx} missing") from None

    def op_PUT(self) -> None:
        idx = self._index_line()
        self._memo_put(idx, self._top())

    def op_BINPUT(self) -> None:
        idx = self._read(1)[0]
        self._memo_put(idx, self._top())

    def op_LONG_BINPUT(self) -> None:
        idx = U32.unpack(self._read(4))[0]
        self._memo_put(idx, self._top())

    def op_MEMOIZE(self) -> None:
        self._memo_put(len(self._memo), self._top())

    def op_GET(self) -> None:
        self._stack.append(self._memo_get(self._index_line()))

    def op_BINGET(self) -> None:
        self._stack.append(self._memo_get(self._read(1)[0]))

    def op_LONG_BINGET(self) -> None:
        self._stack.append(self._memo_get(U32.unpack(self._read(4))[0]))

    # -- globals
    def _global(self, module: str, name: str, opcode: str) -> Global:
        written = None
        if self.proto < 3:
            m2, n2 = map_py2_name(module, name)
            if (m2, n2) != (module, name):
                written = f"{module}.{name}"
                module, name = m2, n2
        key = (module, name, opcode, written)
        seen = self._global_counts.get(key, 0)
        self._global_counts[key] = seen + 1
        if seen < _REFS_PER_NAME:  # a name repeated millions of times is recorded a few times (memory)
            self.budget.charge_globals()
            self.globals.append(GlobalRef(module, name, self.stream, self._op_start, opcode, written=written))
        return Global(module, name, self.stream, self._op_start)

    def _name_line(self, encoding: str) -> str:
        line = self._readline()
        if not line:
            raise self._fail("pickle data was truncated (empty global name line)")  # load_global: len < 2
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            raise self._fail(f"global name is not {encoding}") from None

    def op_GLOBAL(self) -> None:
        module = self._name_line("utf-8")  # load_global: PyUnicode_DecodeUTF8, strict
        name = self._name_line("utf-8")
        self._stack.append(self._global(module, name, "GLOBAL"))

    def op_STACK_GLOBAL(self) -> None:
        name = self._pop()
        module = self._pop()
        if type(module) is not str or type(name) is not str:
            raise self._fail("STACK_GLOBAL with non-string operands")
        self._stack.append(self._global(module, name, "STACK_GLOBAL"))

    def _ext(self, code: int, opcode: str) -> None:
        # load_extension resolves codes through the loading process's copyreg registry, empty in
        # python and in torch: an unregistered code raises there (the stop names the code)
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        if key is None:
            raise self._fail(f"unregistered extension code {code} (a process that registered it with "
                             "copyreg.add_extension would import a global here)")
        self._stack.append(self._global(key[0], key[1], opcode))

    def op_EXT1(self) -> None:
        self._ext(self._read(1)[0], "EXT1")

    def op_EXT2(self) -> None:
        self._ext(U16.unpack(self._read(2))[0], "EXT2")

    def op_EXT4(self) -> None:
        self._ext(I32.unpack(self._read(4))[0], "EXT4")

    # -- calls
    def op_REDUCE(self) -> None:
        args = self._pop()
        func = self._pop()
        self._op("REDUCE", func)
        if _known_not(args, "tuple"):
            raise self._fail("REDUCE arguments are not a tuple")  # PyObject_CallObject refuses
        if type(func) is not Global and isinstance(func, _BUILTIN_VALUES):
            raise self._fail(f"REDUCE calls a {type(func).__name__}")
        why = call_error(func)
        if why:
            raise self._fail(f"REDUCE: {why}")
        if isinstance(func, Global) and func.qualname in NESTED_LOADERS and isinstance(args, tuple):
            self.nested.extend((self._op_start, p) for p in nested_payloads(func, args))
        self._stack.append(interpret_call(func, args, "REDUCE", self.budget))

    def op_NEWOBJ(self) -> None:
        args = self._pop()
        cls = self._pop()
        self._op("NEWOBJ", cls)
        if _known_not(args, "tuple"):
            raise self._fail("NEWOBJ expected an arg tuple")
        if isinstance(cls, (*_BUILTIN_VALUES, TensorStub, Storage)):
            raise self._fail("NEWOBJ class argument isn't a type object")
        self._stack.append(interpret_call(cls, args, "NEWOBJ", self.budget))

    def op_NEWOBJ_EX(self) -> None:
        kwargs = self._pop()
        args = self._pop()
        cls = self._pop()
        self._op("NEWOBJ_EX", cls)
        if isinstance(cls, (*_BUILTIN_VALUES, TensorStub, Storage)):  # load_newobj checks the class first
            raise self._fail(f"NEWOBJ_EX class argument must be a type, not {type(cls).__name__}")
        if _known_not(args, "tuple"):  # load_newobj_ex checks args before kwargs
            raise self._fail("NEWOBJ_EX args are not a tuple")
        if _known_not(kwargs, "dict"):
            raise self._fail("NEWOBJ_EX kwargs are not a dict")
        call = interpret_call(cls, args, "NEWOBJ_EX", self.budget, kwargs)
        if isinstance(call, Call):
            call.kwargs = kwargs
        self._stack.append(call)

    def op_INST(self) -> None:
        args = tuple(self._pop_mark())  # load_inst finds the MARK before reading its lines
        module = self._name_line("ascii")
        name = self._name_line("ascii")
        cls = self._global(module, name, "INST")
        self._op("INST", cls)
        self._stack.append(interpret_call(cls, args, "INST", self.budget))

    def op_OBJ(self) -> None:
        items = self._pop_mark()
        if not items:
            raise self._fail("pickle stack underflow (OBJ without a class)")
        self._op("OBJ", items[0])
        if isinstance(items[0], (*_BUILTIN_VALUES, TensorStub, Storage)) or call_error(items[0]):
            raise self._fail(f"OBJ calls a {describe(items[0])}")  # instantiate(): not callable
        self._stack.append(interpret_call(items[0], tuple(items[1:]), "OBJ", self.budget))

    def op_BUILD(self) -> None:
        state = self._pop()
        target = self._top()
        self._op("BUILD", target, state_detail(state))
        if isinstance(target, ODict):
            if isinstance(state, dict) and "_metadata" in state:
                target.metadata = state["_metadata"]
            elif isinstance(state, tuple) and state and isinstance(state[0], dict):
                target.metadata = state[0].get("_metadata")
        elif isinstance(target, TensorStub):
            if target.subclass is None:  # a subclass may define its own __setstate__
                self._tensor_setstate(state)
        else:
            why = build_error(target, state)
            if why:
                raise self._fail(why)
            if isinstance(target, Call):
                target.state = state

    def _tensor_setstate(self, state: Any) -> None:
        """``Tensor.__setstate__`` (a real tensor: torch rebuilt it): ``len(state)`` is 4 (``set_``),
        5 or 3 (unpacked); any other length, or a state without ``len()``, raises. States only
        running the file could produce are assumed to pass (the rest is scanned)."""
        if not isinstance(state, _BUILTIN_VALUES):
            return
        if not isinstance(state, Sized):
            raise self._fail(f"BUILD on a tensor: Tensor.__setstate__ takes len() of a {type(state).__name__}")
        n = len(state)
        if n not in (3, 4, 5):
            raise self._fail(f"BUILD on a tensor: Tensor.__setstate__ cannot unpack {n} items")

    # -- persistent ids
    def op_PERSID(self) -> None:
        try:
            pid = self._readline().decode("ascii")  # load_persid: ASCII, strict
        except UnicodeDecodeError:
            raise self._fail("persistent id is not ASCII") from None
        self._op("PERSID", pid)
        self._persistent(pid)

    def op_BINPERSID(self) -> None:
        pid = self._pop()
        first = pid[0] if type(pid) is tuple and pid else None
        self._op("BINPERSID", pid, first if type(first) is str else "" if first is None else short_repr(first, 40))
        self._persistent(pid)

    def _persistent(self, pid: Any) -> None:
        if self.persistent_load is None:
            raise self._fail("persistent id without a persistent_load function")
        value = self.persistent_load(pid)
        if isinstance(value, Storage) and value.key not in self._restored:
            self._restore(value)
        self._stack.append(value)

    def _restore(self, st: Storage) -> None:
        """torch restores a storage's location once, when its key first loads: note where it cannot."""
        self._restored.add(st.key)
        note = unrestorable_note(st, self._op_start)
        if note:
            self.notes.append(note)


def _known_not(obj: Any, protocol: str) -> bool:
    """``obj`` is known not to be a ``protocol`` (tuple, dict, buffer): see ``stubs.known_protocols``."""
    known = known_protocols(obj)
    return known is not None and protocol not in known


_DISPATCH: list[Any] = [None] * 256
for _ch, _name in OPCODES.items():
    _DISPATCH[ord(_ch)] = getattr(StaticUnpickler, "op_" + _name)
