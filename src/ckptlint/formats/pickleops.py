"""Opcodes that only build values (numbers, strings, containers), parsed as CPython's C unpickler does.

Each handler mirrors the ``load_*`` function of the same name in CPython's
``Modules/_pickle.c``; where CPython accepts a spelling (``I01``, octal ``I017``,
a NUL ending an INT line) or refuses one, so do we, so that the static
machine stops exactly where ``pickle.load`` would.
"""

from __future__ import annotations

import codecs
import struct
from typing import Any

from ..errors import FormatError, TruncatedPickle
from ..limits import Budget
from .knowncalls import hash_cost, known_protocols
from .stubs import describe

U16 = struct.Struct("<H")
I32 = struct.Struct("<i")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
F64 = struct.Struct(">d")

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SPACE = b" \t\n\v\f\r"


def strtol0(s: bytes) -> tuple[int, int] | None:
    """C ``strtol(s, &end, 0)`` on a 64-bit long: (value, index of end), or None on overflow.

    Skips leading whitespace, takes a sign, then ``0x``/``0X`` for hex, a leading
    ``0`` for octal, else decimal; stops at the first character that is not a digit.
    """
    i, n = 0, len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == 0x2D
        i += 1
    base = 10
    if s[i:i + 2] in (b"0x", b"0X") and i + 2 < n and chr(s[i + 2]) in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif s[i:i + 1] == b"0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < n and chr(s[j]).lower() in digits:
        j += 1
    if j == i:
        return 0, 0  # no conversion: end points at the start of the string
    v = int(s[i:j], base)
    v = -v if neg else v
    if not _INT64_MIN <= v <= _INT64_MAX:
        return None
    return v, j


def py_int(s: bytes, base: int = 0) -> int:
    """``PyLong_FromString(s, NULL, base)`` on a C string: stops at the first NUL; whitespace allowed."""
    text = s.split(b"\0", 1)[0]
    try:
        return int(text.decode("ascii"), base)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("could not convert string to int") from None


class ValueOps:
    """Mixin: the value-building half of the opcode machine (see ``unpickler.StaticUnpickler``)."""

    data: bytes
    pos: int
    stream: str
    anomalies: list[str]
    _op_start: int
    _stack: list[Any]
    _metastack: list[list[Any]]
    _buf_end: int
    """End of the bytes the C unpickler holds in its buffer: ``len(data)`` except inside a FRAME
    read the way a file without ``peek`` (``io.BytesIO``) is read."""
    _fp: int
    """That file's position (the end of the frame buffer) while ``_framed``."""
    _framed: bool
    frame_irregular: bool
    non_ascii_strings: bool
    budget: Budget
    encoding: str
    """How STRING, BINSTRING and SHORT_BINSTRING are decoded: ``ASCII`` (pickle.load's default)
    or ``utf-8`` (what torch.load passes); bytes that do not decode make CPython raise there."""

    # -- reading helpers
    def _read(self, n: int) -> bytes:
        p = self.pos
        e = p + n
        if e > self._buf_end or n < 0:
            return self._read_slow(n)
        self.pos = e
        return self.data[p:e]

    def _read_slow(self, n: int) -> bytes:
        if n < 0:
            raise FormatError(f"negative length at byte {self._op_start} ({self.stream})")
        if not self._framed:
            raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        # _Unpickler_ReadImpl on a file without peek: the rest of the frame buffer is dropped and n
        # fresh bytes are read from the file, which is already past the frame
        start = self._refill()
        e = start + n
        if e > len(self.data):
            raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        self.pos = e
        return self.data[start:e]

    def _read_into(self, n: int) -> bytes:
        """_Unpickler_ReadInto (the payload of the bytes opcodes): what is left in the buffer,
        then the rest from the file, which continues right there: contiguous in every reader."""
        p = self.pos
        e = p + n
        if e <= self._buf_end and n >= 0:
            self.pos = e
            return self.data[p:e]
        if n < 0:
            raise FormatError(f"negative length at byte {self._op_start} ({self.stream})")
        if e > len(self.data):
            raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        self._framed = False
        self._buf_end = len(self.data)
        self.pos = e
        return self.data[p:e]

    def _refill(self) -> int:
        start = self._fp
        if self.pos != self._buf_end:
            self.frame_irregular = True
            self.anomalies.append(
                f"opcode at byte {self._op_start} straddles the FRAME end at byte {self._buf_end}: "
                f"torch.load (reading io.BytesIO) drops bytes {self.pos}-{self._buf_end} and reads on at byte {start}")
        self._framed = False
        self._buf_end = len(self.data)
        return start

    def _readline(self) -> bytes:
        """The line without its newline; CPython refuses a line that does not end in one."""
        p = self.pos
        e = self.data.find(b"\n", p, self._buf_end)
        if e < 0:
            if not self._framed:
                raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
            p = self._refill()  # READ_WHOLE_LINE: file.readline() from where the frame ended
            e = self.data.find(b"\n", p)
            if e < 0:
                raise TruncatedPickle(f"pickle truncated at byte {self._op_start} ({self.stream})")
        self.pos = e + 1
        return self.data[p:e]

    def _fail(self, what: str) -> FormatError:
        return FormatError(f"{what} at byte {self._op_start} ({self.stream})")

    def _pop_mark(self) -> list[Any]:
        if not self._metastack:
            raise self._fail("pickle MARK missing")
        items = self._stack
        self._stack = self._metastack.pop()
        return items

    def _pop(self) -> Any:
        if not self._stack:
            raise self._fail("pickle stack underflow")
        return self._stack.pop()

    def _top(self) -> Any:
        if not self._stack:
            raise self._fail("pickle stack underflow")
        return self._stack[-1]

    # -- constants and numbers
    def op_NONE(self) -> None:
        self._stack.append(None)

    def op_NEWTRUE(self) -> None:
        self._stack.append(True)

    def op_NEWFALSE(self) -> None:
        self._stack.append(False)

    def op_INT(self) -> None:
        # load_int: strtol base 0 (so 017 is octal); a two-character 0 or 1 is a bool (I00/I01);
        # strtol overflow or trailing junk falls back to PyLong_FromString base 0.
        line = self._readline()
        if not line:
            raise self._fail("bad INT line")
        r = strtol0(line)
        if r is not None and (r[1] == len(line) or line[r[1]] == 0):
            v: Any = r[0]
            if len(line) == 2 and v in (0, 1):
                v = bool(v)
        else:
            try:
                v = py_int(line + b"\n")
            except ValueError:
                raise self._fail("bad integer literal") from None
        self._stack.append(v)

    def op_LONG(self) -> None:
        # load_long: one trailing 'L' dropped, then PyLong_FromString base 0 (octal 017 is refused)
        line = self._readline()
        if line.endswith(b"L"):
            line = line[:-1]
        try:
            self._stack.append(py_int(line))
        except ValueError:
            raise self._fail("bad integer literal") from None

    def _index_line(self) -> int:
        """PUT/GET lines: PyLong_FromString base 10, no negative index."""
        line = self._readline()
        if not line:
            raise self._fail("bad memo index line")
        try:
            idx = py_int(line, 10)
        except ValueError:
            raise self._fail("bad integer literal") from None
        if idx < 0:
            raise self._fail("negative memo index")
        return idx

    def op_BININT(self) -> None:
        self._stack.append(I32.unpack(self._read(4))[0])

    def op_BININT1(self) -> None:
        self._stack.append(self._read(1)[0])

    def op_BININT2(self) -> None:
        self._stack.append(U16.unpack(self._read(2))[0])

    def op_LONG1(self) -> None:
        n = self._read(1)[0]
        self._stack.append(int.from_bytes(self._read(n), "little", signed=True))

    def op_LONG4(self) -> None:
        n = I32.unpack(self._read(4))[0]
        if n < 0:
            raise self._fail("negative LONG4 length")
        if n > 4096:
            raise self._fail(f"LONG4 of {n} bytes is beyond any checkpoint value")
        self._stack.append(int.from_bytes(self._read(n), "little", signed=True))

    def op_FLOAT(self) -> None:
        # load_float: PyOS_string_to_double, which takes no whitespace or underscores and
        # raises on overflow, then the line must end (newline or NUL)
        text = self._readline().split(b"\0", 1)[0]
        try:
            if not text or text[:1] in _SPACE or b"_" in text:
                raise ValueError
            v = float(text.decode("ascii"))
            if v in (float("inf"), float("-inf")) and b"inf" not in text.lower():
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            raise self._fail("bad float literal") from None
        self._stack.append(v)

    def op_BINFLOAT(self) -> None:
        self._stack.append(F64.unpack(self._read(8))[0])

    # -- strings and bytes
    def op_STRING(self) -> None:
        line = self._readline()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            try:
                raw = codecs.escape_decode(line[1:-1])[0]
            except ValueError:
                raise self._fail("bad STRING escape") from None
            self._stack.append(self._decode(raw))
        else:
            raise self._fail("the STRING opcode argument must be quoted")

    def _decode(self, raw: bytes) -> str:
        if not raw.isascii():
            self.non_ascii_strings = True
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            self._odd_string()
            raise self._fail(f"string is not {self.encoding} (UnicodeDecodeError)") from None

    def op_BINSTRING(self) -> None:
        n = I32.unpack(self._read(4))[0]
        if n < 0:
            raise self._fail("negative BINSTRING length")
        self._stack.append(self._decode(self._read(n)))

    def op_SHORT_BINSTRING(self) -> None:
        self._stack.append(self._decode(self._read(self._read(1)[0])))

    def _odd_string(self) -> None:
        """Hook: a SHORT_BINSTRING that is not UTF-8 (readers disagree on it)."""

    def op_BINBYTES(self) -> None:
        self._stack.append(self._read_into(U32.unpack(self._read(4))[0]))

    def op_SHORT_BINBYTES(self) -> None:
        self._stack.append(self._read_into(self._read(1)[0]))

    def op_BINBYTES8(self) -> None:
        self._stack.append(self._read_into(U64.unpack(self._read(8))[0]))

    def op_BYTEARRAY8(self) -> None:
        self._stack.append(bytearray(self._read_into(U64.unpack(self._read(8))[0])))

    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self._fail("bad UTF-8 string") from None

    def op_UNICODE(self) -> None:
        try:
            self._stack.append(self._readline().decode("raw-unicode-escape"))
        except UnicodeDecodeError:
            raise self._fail("bad UNICODE escape") from None

    def op_SHORT_BINUNICODE(self) -> None:
        self._stack.append(self._text(self._read(self._read(1)[0])))

    def op_BINUNICODE(self) -> None:
        self._stack.append(self._text(self._read(U32.unpack(self._read(4))[0])))

    def op_BINUNICODE8(self) -> None:
        self._stack.append(self._text(self._read(U64.unpack(self._read(8))[0])))

    def op_NEXT_BUFFER(self) -> None:
        raise self._fail("pickle needs out-of-band buffers (NEXT_BUFFER)")

    def op_READONLY_BUFFER(self) -> None:
        # load_readonly_buffer: PyMemoryView_FromObject on the top, which needs the buffer protocol.
        # A global or a call's result may be a buffer (pickle.PROTO is bytes, bytearray() is one): the
        # machine stops only where the object is known not to be
        top = self._top()
        if isinstance(top, bytearray):
            # a writable buffer is replaced on the stack (not in the memo) by a read-only memoryview,
            # which has no append, extend or item assignment
            self._stack[-1] = memoryview(top).toreadonly()
            return
        known = known_protocols(top)
        if known is not None and "buffer" not in known:
            raise self._fail(f"READONLY_BUFFER on {describe(top)} (no buffer protocol)")

    # -- containers
    def op_EMPTY_TUPLE(self) -> None:
        self._stack.append(())

    def op_TUPLE(self) -> None:
        items = tuple(self._pop_mark())  # pop first: _pop_mark swaps the stack
        self._stack.append(items)

    def op_TUPLE1(self) -> None:
        self._stack.append((self._pop(),))

    def op_TUPLE2(self) -> None:
        b = self._pop()
        a = self._pop()
        self._stack.append((a, b))

    def op_TUPLE3(self) -> None:
        c = self._pop()
        b = self._pop()
        a = self._pop()
        self._stack.append((a, b, c))

    def op_EMPTY_LIST(self) -> None:
        self._stack.append([])

    def op_LIST(self) -> None:
        items = self._pop_mark()
        self._stack.append(items)

    def op_EMPTY_DICT(self) -> None:
        self._stack.append({})

    def op_EMPTY_SET(self) -> None:
        self._stack.append(set())

    def op_FROZENSET(self) -> None:
        items = frozenset(self._hashable(self._pop_mark()))
        self._stack.append(items)

    def _charge_hash(self, keys: Any) -> None:
        """Charge what hashing ``keys`` costs to the file's budget before hashing them (see ``hash_cost``)."""
        room = self.budget.hash_room()
        self.budget.charge_hash(hash_cost(keys, max(room, 0)))

    def _hashable(self, items: list[Any]) -> list[Any]:
        self._charge_hash(items)
        for it in items:
            try:
                hash(it)
            except TypeError:
                raise self._fail("unhashable set item") from None
        return items

    def op_MARK(self) -> None:
        self._metastack.append(self._stack)
        self._stack = []

    def op_POP(self) -> None:
        if self._stack:
            self._stack.pop()
        else:
            self._pop_mark()

    def op_POP_MARK(self) -> None:
        self._pop_mark()

    def op_DUP(self) -> None:
        self._stack.append(self._top())


OPCODES = {
    "(": "MARK", ".": "STOP", "0": "POP", "1": "POP_MARK", "2": "DUP", "F": "FLOAT", "I": "INT",
    "J": "BININT", "K": "BININT1", "L": "LONG", "M": "BININT2", "N": "NONE", "P": "PERSID",
    "Q": "BINPERSID", "R": "REDUCE", "S": "STRING", "T": "BINSTRING", "U": "SHORT_BINSTRING",
    "V": "UNICODE", "X": "BINUNICODE", "a": "APPEND", "b": "BUILD", "c": "GLOBAL", "d": "DICT",
    "}": "EMPTY_DICT", "e": "APPENDS", "g": "GET", "h": "BINGET", "i": "INST", "j": "LONG_BINGET",
    "l": "LIST", "]": "EMPTY_LIST", "o": "OBJ", "p": "PUT", "q": "BINPUT", "r": "LONG_BINPUT",
    "s": "SETITEM", "t": "TUPLE", ")": "EMPTY_TUPLE", "u": "SETITEMS", "G": "BINFLOAT",
    "\x80": "PROTO", "\x81": "NEWOBJ", "\x82": "EXT1", "\x83": "EXT2", "\x84": "EXT4",
    "\x85": "TUPLE1", "\x86": "TUPLE2", "\x87": "TUPLE3", "\x88": "NEWTRUE", "\x89": "NEWFALSE",
    "\x8a": "LONG1", "\x8b": "LONG4", "B": "BINBYTES", "C": "SHORT_BINBYTES",
    "\x8c": "SHORT_BINUNICODE", "\x8d": "BINUNICODE8", "\x8e": "BINBYTES8", "\x8f": "EMPTY_SET",
    "\x90": "ADDITEMS", "\x91": "FROZENSET", "\x92": "NEWOBJ_EX", "\x93": "STACK_GLOBAL",
    "\x94": "MEMOIZE", "\x95": "FRAME", "\x96": "BYTEARRAY8", "\x97": "NEXT_BUFFER",
    "\x98": "READONLY_BUFFER",
}
"""Opcode byte -> pickletools name."""

OPCODE_NAMES: list[str | None] = [None] * 256
for _ch, _name in OPCODES.items():
    OPCODE_NAMES[ord(_ch)] = _name
