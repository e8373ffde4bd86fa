"""The opcode loop of :class:`~ckptlint.formats.unpickler.StaticUnpickler`, with its hot opcodes inline.

A checkpoint's pickle is millions of a dozen opcodes (``BINPUT``, ``BININT1``, ``BINGET``, ``MARK``,
``BINUNICODE``, ``TUPLE``, ``REDUCE`` …). Calling a method per opcode costs several times what the
opcode does, so this loop runs those opcodes on local variables (the stack, the memo list, the
position) and hands every other opcode, and every case outside the plain shape of a hot one, to
the machine's own handler (``op_*``), which is the definition: an inline case only runs where its
handler would do exactly the same thing and cannot raise.

- An inline case runs only when its bytes lie within the buffer and do not cross the last FRAME's
  end (``lim``); anything else (a refill, a straddle, a missing memo key, an empty stack) is the
  handler's case.
- The first time an opcode is seen it goes through its handler too, which is where its first
  offset is recorded (``kinds`` then lets it run inline).
- The memo is a list while every index the stream writes is the next one (what pickle writes);
  any other index turns it into the handler's dict for the rest of the stream.
- ``REDUCE`` of ``torch._utils._rebuild_tensor_v2`` and of ``collections.OrderedDict()`` in the
  shapes ``torch.save`` writes is built here; any other shape goes to ``op_REDUCE``.
- ``SETITEM`` of a ``str`` key into a plain ``dict`` (a state_dict's ``_metadata``) runs here while the
  file's hash budget has room for its one node; anything else is ``op_SETITEM``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..errors import FormatError, LimitExceeded, TruncatedPickle
from ..limits import Budget, Limits
from .knownbuild import state_detail
from .pickleops import F64, I32, U16, U32
from .stubs import Call, Global, ODict, Storage
from .torchcalls import plain_global, rebuild_tensor_v2_plain


class Host(Protocol):
    """What the loop reads and writes of its :class:`~ckptlint.formats.unpickler.StaticUnpickler`.

    A protocol rather than an import: the unpickler imports this module, and the import graph
    stays acyclic (tests/test_core_import_graph.py).
    """

    data: bytes
    pos: int
    end: int
    count: int
    stream: str
    limits: Limits
    budget: Budget
    anomalies: list[str]
    frame_irregular: bool
    persistent_load: Callable[[Any], Any] | None
    _buf_end: int
    _first: dict[int, int]
    _frame_end: int | None
    _framed: bool
    _memo: list[Any] | dict[int, Any]
    _memo_cap: int
    _metastack: list[list[Any]]
    _op_start: int
    _stack: list[Any]
    _restored: set[str]

    def _op(self, opcode: str, obj: Any, detail: str = "") -> None: ...

    def _refill(self) -> int: ...

    def _restore(self, st: Storage) -> None: ...

_U32 = U32.unpack_from
_I32 = I32.unpack_from
_U16 = U16.unpack_from
_F64 = F64.unpack_from

INLINE = frozenset(b"rqKhJM(XtQb02aes\x81\x86\x85\x87\x89\x88N)}]R\x8c\x94jG")
"""The opcodes this loop runs itself once seen (in the common shape)."""

_ODICT = "collections.OrderedDict"
_new_dict = dict.__new__


def _limit(pos: int, buf_end: int, fe: int | None) -> int:
    """Where inline reads must end: the buffer's end, or the last FRAME's end while it is ahead
    (an opcode that crosses it is the handler's: it records the straddle)."""
    return fe if fe is not None and pos < fe < buf_end else buf_end


def run(up: Host, dispatch: list[Callable[[Any], Any] | None], stop: object) -> Any:
    """Execute ``up``'s stream to STOP; returns the value; raises where CPython raises."""
    data = up.data
    n = len(data)
    first = up._first
    kinds = [0] * 256
    for c in first:
        kinds[c] = c if c in INLINE else 0
    stack = up._stack
    metastack = up._metastack
    memo: Any = up._memo
    mlen = len(memo) if type(memo) is list else -1  # the list memo's length; -1 for the dict (handlers only)
    cap = up._memo_cap
    max_depth = up.limits.max_depth
    pos = up.pos
    start = up._op_start
    buf_end = up._buf_end
    lim = _limit(pos, buf_end, up._frame_end)
    left = up.budget.opcodes_left()
    count = 0
    rt2_seen: Any = None
    od_seen: Any = None
    pid_seen: Any = None
    reduce_seen: Any = None
    newobj_seen: Any = None
    build_seen: Any = None
    build_detail = ""
    persistent_load = up.persistent_load
    restored = up._restored
    budget = up.budget
    max_hash = budget.limits.max_hash_nodes
    try:
        for count in range(1, left + 1):  # count is read after the loop
            if pos >= buf_end:
                if pos >= n or not up._framed:
                    up._op_start = start
                    count -= 1  # this opcode never ran
                    raise TruncatedPickle(f"pickle ended without STOP ({up.stream})")
                up._op_start = up.pos = pos
                pos = up._refill()
                buf_end = up._buf_end
                lim = _limit(pos, buf_end, up._frame_end)
            start = pos
            code = data[pos]
            k = kinds[code]
            # most frequent first, as torch.save's protocol-2 streams use them (then protocol 4's)
            if k == 114:  # LONG_BINPUT
                e = pos + 5
                if e <= lim and stack:
                    idx = _U32(data, pos + 1)[0]
                    if idx == mlen:
                        if mlen < cap:
                            memo.append(stack[-1])
                            mlen += 1
                            pos = e
                            continue
                    elif idx < mlen:
                        memo[idx] = stack[-1]
                        pos = e
                        continue
            elif k == 75:  # BININT1
                if pos + 2 <= lim:
                    stack.append(data[pos + 1])
                    pos += 2
                    continue
            elif k == 104:  # BINGET
                if pos + 2 <= lim:
                    try:
                        v = memo[data[pos + 1]]
                    except LookupError:
                        pass
                    else:
                        stack.append(v)
                        pos += 2
                        continue
            elif k == 88:  # BINUNICODE
                e = pos + 5
                if e <= lim:
                    e2 = e + _U32(data, pos + 1)[0]
                    if e2 <= lim:
                        try:
                            s = str(data[e:e2], "utf-8", "surrogatepass")
                        except UnicodeDecodeError:
                            pass
                        else:
                            stack.append(s)
                            pos = e2
                            continue
            elif k == 40:  # MARK
                if len(metastack) < max_depth:
                    metastack.append(stack)
                    stack = []
                    pos += 1
                    continue
            elif k == 82:  # REDUCE
                if len(stack) >= 2:
                    func = stack[-2]
                    args = stack[-1]
                    if type(func) is Global and type(args) is tuple:
                        plain = func.plain
                        if plain is None:
                            plain = func.plain = plain_global(func.module, func.name)
                        name = func.name
                        if plain:
                            if func is not reduce_seen:
                                up._op_start = start
                                up._op("REDUCE", func)
                                reduce_seen = func
                            stack.pop()
                            stack[-1] = Call(func, args, "REDUCE")
                            pos += 1
                            continue
                        if name == "_rebuild_tensor_v2" and func.module == "torch._utils":
                            up._op_start = start
                            if func is not rt2_seen:
                                up._op("REDUCE", func)
                                rt2_seen = func
                            value = rebuild_tensor_v2_plain(args)  # raises where the call raises
                            if value is not None:
                                stack.pop()
                                stack[-1] = value
                                pos += 1
                                continue
                        elif name == "OrderedDict" and func.module == "collections" and not args:
                            if func is not od_seen:
                                up._op_start = start
                                up._op("REDUCE", func)
                                od_seen = func
                            stack.pop()
                            od = _new_dict(ODict)  # ODict(_ODICT) without a Python __init__ call
                            od.qualname = _ODICT
                            od.metadata = None
                            stack[-1] = od
                            pos += 1
                            continue
            elif k == 116:  # TUPLE
                if metastack:
                    t = tuple(stack)
                    stack = metastack.pop()
                    stack.append(t)
                    pos += 1
                    continue
            elif k == 41:  # EMPTY_TUPLE
                stack.append(())
                pos += 1
                continue
            elif k == 81:  # BINPERSID
                if stack and persistent_load is not None:
                    pid = stack[-1]
                    if type(pid) is tuple and pid and type(pid[0]) is str:
                        up._op_start = start
                        if pid[0] != pid_seen:
                            up._op("BINPERSID", pid, pid[0])
                            pid_seen = pid[0]
                        value = persistent_load(pid)
                        if isinstance(value, Storage) and value.key not in restored:
                            if value.location == "cpu":
                                restored.add(value.key)  # what _restore does for a location torch restores
                            else:
                                up._restore(value)
                        stack[-1] = value
                        pos += 1
                        continue
            elif k == 134:  # TUPLE2
                if len(stack) >= 2:
                    v = stack.pop()
                    stack[-1] = (stack[-1], v)
                    pos += 1
                    continue
            elif k == 137:  # NEWFALSE
                stack.append(False)
                pos += 1
                continue
            elif k == 133:  # TUPLE1
                if stack:
                    stack[-1] = (stack[-1],)
                    pos += 1
                    continue
            elif k == 113:  # BINPUT
                e = pos + 2
                if e <= lim and stack:
                    idx = data[pos + 1]
                    if idx == mlen:
                        if mlen < cap:
                            memo.append(stack[-1])
                            mlen += 1
                            pos = e
                            continue
                    elif idx < mlen:
                        memo[idx] = stack[-1]
                        pos = e
                        continue
            elif k == 148:  # MEMOIZE
                if stack and 0 <= mlen < cap:
                    memo.append(stack[-1])
                    mlen += 1
                    pos += 1
                    continue
            elif k == 140:  # SHORT_BINUNICODE
                e = pos + 2
                if e <= lim:
                    e2 = e + data[pos + 1]
                    if e2 <= lim:
                        try:
                            s = str(data[e:e2], "utf-8", "surrogatepass")
                        except UnicodeDecodeError:
                            pass
                        else:
                            stack.append(s)
                            pos = e2
                            continue
            elif k == 115:  # SETITEM
                # a str key into a plain dict (state_dict metadata): _setitems charges one hash node, records nothing
                if len(stack) >= 3 and type(stack[-3]) is dict and type(stack[-2]) is str and budget.hashed < max_hash:
                    budget.hashed += 1
                    v = stack.pop()
                    key = stack.pop()
                    stack[-1][key] = v
                    pos += 1
                    continue
            elif k == 125:  # EMPTY_DICT
                stack.append({})
                pos += 1
                continue
            elif k == 106:  # LONG_BINGET
                if pos + 5 <= lim:
                    try:
                        v = memo[_U32(data, pos + 1)[0]]
                    except LookupError:
                        pass
                    else:
                        stack.append(v)
                        pos += 5
                        continue
            elif k == 77:  # BININT2
                if pos + 3 <= lim:
                    stack.append(_U16(data, pos + 1)[0])
                    pos += 3
                    continue
            elif k == 74:  # BININT
                if pos + 5 <= lim:
                    stack.append(_I32(data, pos + 1)[0])
                    pos += 5
                    continue
            elif k == 136:  # NEWTRUE
                stack.append(True)
                pos += 1
                continue
            elif k == 135:  # TUPLE3
                if len(stack) >= 3:
                    c3 = stack.pop()
                    b3 = stack.pop()
                    stack[-1] = (stack[-1], b3, c3)
                    pos += 1
                    continue
            elif k == 78:  # NONE
                stack.append(None)
                pos += 1
                continue
            elif k == 93:  # EMPTY_LIST
                stack.append([])
                pos += 1
                continue
            elif k == 98:  # BUILD
                if len(stack) >= 2:
                    target = stack[-2]
                    kind = type(target)
                    g: Any = target if kind is Global else target.func if kind is Call else None
                    if type(g) is Global:
                        plain = g.plain
                        if plain is None:
                            plain = g.plain = plain_global(g.module, g.name)
                        if plain:
                            state = stack.pop()
                            detail = ("dict:1" if state else "dict:0") if type(state) is dict else state_detail(state)
                            if kind is Call:
                                up._op_start = start
                                up._op("BUILD", target, detail)
                                target.state = state
                            elif target is not build_seen or detail != build_detail:
                                up._op_start = start
                                up._op("BUILD", target, detail)
                                build_seen, build_detail = target, detail
                            pos += 1
                            continue
            elif k == 101:  # APPENDS
                if metastack:
                    below = metastack[-1]
                    if below and type(below[-1]) is list:
                        below[-1].extend(stack)
                        stack = metastack.pop()
                        pos += 1
                        continue
            elif k == 97:  # APPEND
                if len(stack) >= 2 and type(stack[-2]) is list:
                    v = stack.pop()
                    stack[-1].append(v)
                    pos += 1
                    continue
            elif k == 129:  # NEWOBJ
                if len(stack) >= 2:
                    cls = stack[-2]
                    args = stack[-1]
                    if type(cls) is Global and type(args) is tuple:
                        plain = cls.plain
                        if plain is None:
                            plain = cls.plain = plain_global(cls.module, cls.name)
                        if plain:
                            if cls is not newobj_seen:
                                up._op_start = start
                                up._op("NEWOBJ", cls)
                                newobj_seen = cls
                            stack.pop()
                            stack[-1] = Call(cls, args, "NEWOBJ")
                            pos += 1
                            continue
            elif k == 48:  # POP
                if stack:
                    stack.pop()
                    pos += 1
                    continue
            elif k == 50:  # DUP
                if stack:
                    stack.append(stack[-1])
                    pos += 1
                    continue
            elif k == 71 and pos + 9 <= lim:  # BINFLOAT
                stack.append(_F64(data, pos + 1)[0])
                pos += 9
                continue
            # the handler's case: first sight, any other opcode, any other shape
            up._op_start = start
            handler = dispatch[code]
            if handler is None:
                raise FormatError(f"invalid pickle opcode 0x{code:02x} at byte {start} ({up.stream})")
            if code not in first:
                first[code] = start
                if code in INLINE:
                    kinds[code] = code
            up.pos = start + 1
            up._stack = stack
            if handler(up) is stop:
                up.end = up.pos
                return up._stack[-1]
            pos = up.pos
            stack = up._stack
            memo = up._memo
            mlen = len(memo) if type(memo) is list else -1
            buf_end = up._buf_end
            fe = up._frame_end
            if fe is not None and start < fe < pos:
                up.frame_irregular = True
                up.anomalies.append(f"opcode at byte {start} crosses the FRAME boundary at byte {fe}")
            lim = fe if fe is not None and pos < fe < buf_end else buf_end  # _limit, inline
        # the budget's opcodes are spent: what the next iteration would have found first, then the bound
        up._op_start = start
        if pos >= buf_end:
            if pos >= n or not up._framed:
                raise TruncatedPickle(f"pickle ended without STOP ({up.stream})")
            up._op_start = up.pos = pos
            pos = up._refill()
        lim_n = up.budget.limits.max_opcodes
        raise LimitExceeded("max_opcodes", lim_n, f"pickle opcodes in the whole file, {up.stream}")
    finally:
        up._stack = stack
        up.count = count
