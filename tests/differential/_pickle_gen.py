"""The stream generator of test_pickle_vs_cpython.py: valid streams from a grammar that uses every opcode,
then framed, memoised, BUILT and broken (see that module's docstring)."""

from __future__ import annotations

import random
import struct

_INTS = [b"0", b"1", b"01", b"00", b"01751", b"+1", b" 7", b"0x1f", b"-010", b"1_000", b"0o17", b"0b11",
         b"9223372036854775807", b"99999999999999999999", b"-1"]
_FLOATS = [b"1.5", b"1e5", b"-0.0", b"inf", b"nan", b"3"]
_LONGS = [b"123L", b"0x1fL", b"-5", b"0L", b"12345678901234567890L"]


class Gen:
    """Builds one valid stream: ``value()`` appends opcodes that leave exactly one value on the stack."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.out: list[bytes] = []
        self.memo: list[int] = []  # memo indexes holding a value
        self.next_memo = 0
        self.depth = 0

    def emit(self, b: bytes) -> None:
        self.out.append(b)

    def text(self) -> str:
        return "".join(self.rng.choice("abcxyz_") for _ in range(self.rng.randint(0, 6)))

    def string(self) -> None:
        t = self.text()
        raw = t.encode()
        kind = self.rng.randrange(7)
        if kind == 0:
            self.emit(b"\x8c" + bytes([len(raw)]) + raw)
        elif kind == 1:
            self.emit(b"X" + struct.pack("<I", len(raw)) + raw)
        elif kind == 2:
            self.emit(b"\x8d" + struct.pack("<Q", len(raw)) + raw)
        elif kind == 3:
            self.emit(b"V" + raw + b"\n")
        elif kind == 4:
            self.emit(b"S" + repr(t).encode() + b"\n")
        elif kind == 5:
            self.emit(b"T" + struct.pack("<i", len(raw)) + raw)
        else:
            self.emit(b"U" + bytes([len(raw)]) + raw)

    def atom(self) -> None:
        r = self.rng
        k = r.randrange(12)
        if k == 0:
            self.emit(b"N")
        elif k == 1:
            self.emit(r.choice([b"\x88", b"\x89"]))
        elif k == 2:
            self.emit(r.choice([b"J" + struct.pack("<i", r.randint(-9, 9 ** 9)), b"K" + bytes([r.randrange(256)]),
                                b"M" + struct.pack("<H", r.randrange(65536))]))
        elif k == 3:
            self.emit(b"I" + r.choice(_INTS) + b"\n")
        elif k == 4:
            self.emit(b"L" + r.choice(_LONGS) + b"\n")
        elif k == 5:
            n = r.randint(-2 ** 70, 2 ** 70)
            raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True) if n else b""
            self.emit(r.choice([b"\x8a" + bytes([len(raw)]) + raw, b"\x8b" + struct.pack("<i", len(raw)) + raw]))
        elif k == 6:
            self.emit(r.choice([b"G" + struct.pack(">d", r.random()), b"F" + r.choice(_FLOATS) + b"\n"]))
        elif k in (7, 8):
            self.string()
        else:
            raw = bytes(r.randrange(256) for _ in range(r.randint(0, 5)))
            n8 = struct.pack("<Q", len(raw))
            self.emit(r.choice([b"C" + bytes([len(raw)]) + raw, b"B" + struct.pack("<I", len(raw)) + raw,
                                b"\x8e" + n8 + raw, b"\x96" + n8 + raw]))

    def key(self) -> None:
        if self.rng.random() < 0.5:
            self.string()
        else:
            self.emit(b"K" + bytes([self.rng.randrange(256)]))

    def global_(self) -> None:
        r = self.rng
        mod, name = f"m{r.randrange(4)}", f"f{r.randrange(4)}"
        if r.random() < 0.1:
            mod, name = r.choice([("__builtin__", "set"), ("copy_reg", "_reconstructor"), ("UserDict", "UserDict")])
        if r.random() < 0.5:
            self.emit(b"c" + mod.encode() + b"\n" + name.encode() + b"\n")
        else:
            for t in (mod, name):
                raw = t.encode()
                self.emit(b"\x8c" + bytes([len(raw)]) + raw)
            self.emit(b"\x93")

    def args(self, n: int) -> None:
        if n == 0:
            self.emit(b")")
        elif n <= 3 and self.rng.random() < 0.5:
            for _ in range(n):
                self.value()
            self.emit(bytes([0x84 + n]))
        else:
            self.emit(b"(")
            for _ in range(n):
                self.value()
            self.emit(b"t")

    def call(self) -> None:
        r = self.rng
        k = r.randrange(5)
        if k == 0:
            self.global_()
            self.args(r.randint(0, 3))
            self.emit(b"R")
        elif k == 1:
            self.global_()
            self.args(r.randint(0, 2))
            self.emit(b"\x81")
        elif k == 2:
            self.global_()
            self.args(r.randint(0, 2))
            self.emit(b"}")
            self.emit(b"\x92")
        elif k == 3:
            mod, name = f"m{r.randrange(4)}", f"k{r.randrange(3)}"
            self.emit(b"(")
            for _ in range(r.randint(0, 2)):
                self.value()
            self.emit(b"i" + mod.encode() + b"\n" + name.encode() + b"\n")
        else:
            self.emit(b"(")
            self.global_()
            for _ in range(r.randint(0, 2)):
                self.value()
            self.emit(b"o")
        if r.random() < 0.4:  # BUILD with a dict state, or (state, slotstate)
            self.emit(b"}")
            if r.random() < 0.5:
                self.key()
                self.value()
                self.emit(b"s")
            if r.random() < 0.3:
                self.emit(b"}\x86")
            self.emit(b"b")
        if r.random() < 0.2:
            self.value()
            self.emit(b"a")
        if r.random() < 0.2:
            self.key()
            self.value()
            self.emit(b"s")

    def container(self) -> None:
        r = self.rng
        k = r.randrange(6)
        if k == 0:
            self.args(r.randint(0, 4))
        elif k == 1:
            if r.random() < 0.5:
                self.emit(b"]")
                for _ in range(r.randint(0, 3)):
                    if r.random() < 0.5:
                        self.value()
                        self.emit(b"a")
                    else:
                        self.emit(b"(")
                        for _ in range(r.randint(0, 3)):
                            self.value()
                        self.emit(b"e")
            else:
                self.emit(b"(")
                for _ in range(r.randint(0, 3)):
                    self.value()
                self.emit(b"l")
        elif k == 2:
            self.emit(b"}" if r.random() < 0.5 else b"(d")
            for _ in range(r.randint(0, 3)):
                self.key()
                self.value()
                self.emit(b"s")
            if r.random() < 0.5:
                self.emit(b"(")
                for _ in range(r.randint(0, 2)):
                    self.key()
                    self.value()
                self.emit(b"u")
        elif k == 3:
            self.emit(b"\x8f(")
            for _ in range(r.randint(0, 3)):
                self.key()
            self.emit(b"\x90")
            if r.random() < 0.3:  # BUILD on a set: None state, or (None, {})
                self.emit(r.choice([b"Nb", b"N}\x86b"]))
        elif k == 4:
            self.emit(b"(")
            for _ in range(r.randint(0, 3)):
                self.key()
            self.emit(b"\x91")
        else:
            self.emit(b"(")
            for _ in range(r.randint(0, 3)):
                self.key()
                self.value()
            self.emit(b"d")

    def memoise(self) -> None:
        r = self.rng
        k = r.randrange(4)
        idx = self.next_memo
        if k == 0:
            self.emit(b"p" + str(idx).encode() + b"\n")
        elif k == 1 and idx < 256:
            self.emit(b"q" + bytes([idx]))
        elif k == 2:
            self.emit(b"r" + struct.pack("<I", idx))
        else:
            idx = len(set(self.memo))  # MEMOIZE uses the number of entries so far
            self.emit(b"\x94")
        self.memo.append(idx)
        self.next_memo = max(self.next_memo, idx) + 1

    def value(self) -> None:
        r = self.rng
        self.depth += 1
        roll = r.random()
        if self.memo and roll < 0.1:
            idx = r.choice(self.memo)
            self.emit(r.choice([b"g" + str(idx).encode() + b"\n", b"j" + struct.pack("<I", idx)]
                               + ([b"h" + bytes([idx])] if idx < 256 else [])))
        elif self.depth > 4 or roll < 0.45:
            self.atom()
        elif roll < 0.7:
            self.call()
        else:
            self.container()
        if r.random() < 0.3:
            self.memoise()
        if r.random() < 0.05:
            self.emit(b"2" + b"0")  # DUP then POP
        if r.random() < 0.05:
            self.emit(b"(N1")  # MARK, a value, POP_MARK
        self.depth -= 1

    def stream(self) -> tuple[bytes, list[int]]:
        """The stream and the offsets where opcodes start (each emit starts one)."""
        r = self.rng
        proto = r.choice([None, 0, 1, 2, 3, 4, 5])
        if proto is not None:
            self.emit(b"\x80" + bytes([proto]))
            self.out.insert(0, self.out.pop())
        self.value()
        self.emit(b".")
        starts, pos = [], 0
        for chunk in self.out:
            starts.append(pos)
            pos += len(chunk)
        return b"".join(self.out), starts


def _frame(data: bytes, starts: list[int], rng: random.Random) -> bytes:
    """FRAME opcodes at opcode boundaries, with lengths that fit, straddle, nest or overrun."""
    out = bytearray()
    cuts = sorted(rng.sample(starts, min(len(starts), rng.randint(1, 3))))
    prev = 0
    for pos in cuts:
        out += data[prev:pos]
        rest = len(data) - pos
        size = rng.choice([rest, max(0, rest - rng.randint(1, 5)), rng.randint(0, rest), rest + rng.randint(1, 9)])
        out += b"\x95" + struct.pack("<Q", size)
        prev = pos
    return bytes(out + data[prev:])


def _break(data: bytes, rng: random.Random) -> bytes:
    k = rng.randrange(3)
    if k == 0:
        return data[:rng.randrange(len(data))]
    if k == 1:
        n = rng.randint(1, 4)
        return data[:-n] + bytes(rng.randrange(256) for _ in range(n))
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]


def case(seed: int) -> bytes:
    rng = random.Random(seed)
    data, starts = Gen(rng).stream()
    if rng.random() < 0.3:
        data = _frame(data, starts, rng)
    if rng.random() < 0.35:
        data = _break(data, rng)
    return data


