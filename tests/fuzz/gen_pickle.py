"""Grammar-based pickle streams: every opcode, its argument encodings, FRAME splits, memo, BUILD forms, broken tails.

A random walk over opcodes keeps a rough model of the stack (what kind of value is on
top, where the marks are) so most streams run far, and sometimes breaks the rules on
purpose so CPython stops midway: the globals requested before the stop are what the
comparison is about then.
"""

from __future__ import annotations

import random
import struct

from .features import on

GLOBALS: tuple[tuple[str, str], ...] = (
    ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"), ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_parameter"), ("torch", "Size"), ("torch", "device"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("torch.storage", "UntypedStorage"),
    ("torch", "HalfStorage"), ("torch", "BadStorage"), ("os", "FloatStorage"), ("torch.tensor", "Tensor"),
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("subprocess", "Popen"), ("runpy", "_run_code"), ("numpy", "savetxt"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy", "dtype"), ("argparse", "Namespace"),
    ("_codecs", "encode"), ("pickle", "loads"), ("torch", "load"), ("webbrowser", "open"),
    ("__builtin__", "set"), ("__builtin__", "eval"), ("__builtin__", "xrange"), ("copy_reg", "_reconstructor"),
    ("UserDict", "UserDict"), ("exceptions", "ValueError"), ("cPickle", "loads"), ("Queue", "Queue"),
    ("torch.nn.modules.linear", "Linear"), ("os", "path.join"), ("torchvision.models", "resnet.torch.os.system"),
    ("", "x"), ("a b", "c d"), ("m\u00f3dulo", "\u00f1ame"), ("builtins", "len"), ("__future__", "annotations"),
)

VALUE_FEATURES = {0: "int-text", 1: "long-text", 2: "float-text", 3: "string", 4: "unicode-text", 7: "long-bin",
                  9: "unicode", 10: "bytes", 11: "short-string", 14: "buffer"}
CALLEES = tuple(g for g in GLOBALS if "Storage" not in g[1])
REAL_GLOBALS = frozenset({
    ("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"), ("torch", "device"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    ("_codecs", "encode"), ("__builtin__", "set"), ("__builtin__", "xrange"), ("exceptions", "ValueError"),
    ("builtins", "len"), ("__future__", "annotations"),
})
"""The names of the pool the oracle resolves to the real object (tests/fuzz/inert.py ``allowed_global``; the
Python 2 spellings below protocol 3). A call or opcode such an object rejects stops CPython where a stand-in
would read on. Picking one is the feature ``pickle:real-global``."""


def pick(rng: random.Random, pool: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """A name from ``pool``; one of :data:`REAL_GLOBALS` only while ``pickle:real-global`` is on."""
    g = rng.choice(pool)
    if g in REAL_GLOBALS and not on("pickle:real-global"):
        g = rng.choice([x for x in pool if x not in REAL_GLOBALS])
    return g


def pick_callee(rng: random.Random) -> tuple[str, str]:
    return pick(rng, CALLEES)
INT_LINES = (b"0", b"1", b"00", b"01", b"017", b"0x1F", b"-5", b"+3", b" 7", b"1_000", b"-0", b"",
             b"99999999999999999999", b"12L", b"0o17", b"1 ", b"08")
FLOAT_LINES = (b"1.5", b"nan", b"-inf", b"1e400", b" 2", b"1_0.5", b"0x10", b"", b"3")
STRING_LINES = (b"'abc'", b'"abc"', b"'a\\x00b'", b"abc", b"'unterminated", b"''", b"'\\u00e9'", b"'\xc3\xa9'")


def _u(s: bytes, n: int) -> bytes:
    return struct.pack("<B" if n == 1 else "<I" if n == 4 else "<Q", len(s)) + s


class Walk:
    """One random pickle body as a list of opcode chunks."""

    def __init__(self, rng: random.Random, *, text_only: bool = False, strict: float = 0.97) -> None:
        self.rng = rng
        self.text_only = text_only
        self.strict = strict
        self.ops: list[bytes] = []
        self.stack: list[str] = []
        self.memo: list[int] = []

    # ---- helpers -------------------------------------------------------------
    def emit(self, chunk: bytes, pops: int = 0, push: str | None = None) -> None:
        self.ops.append(chunk)
        for _ in range(min(pops, len(self.stack))):
            self.stack.pop()
        if push is not None:
            self.stack.append(push)

    def top(self, n: int = 1) -> list[str]:
        return self.stack[-n:] if len(self.stack) >= n else []

    def marks(self) -> int:
        return self.stack.count("mark")

    def since_mark(self) -> int:
        if "mark" not in self.stack:
            return -1
        return len(self.stack) - 1 - max(i for i, k in enumerate(self.stack) if k == "mark")

    def pop_to_mark(self, push: str | None) -> None:
        while self.stack and self.stack[-1] != "mark":
            self.stack.pop()
        if self.stack:
            self.stack.pop()
        if push:
            self.stack.append(push)

    def global_name(self, callee: bool = False) -> tuple[str, str]:
        """A name from the pool. Storage classes appear only inside persistent ids, as torch writes
        them: while torch.load drives the oracle they are torch's real classes, so a call, BUILD or
        APPENDS on one runs torch's code, not a stand-in's."""
        r = self.rng
        if callee:
            return pick(r, CALLEES)
        if r.random() < 0.05:
            return (r.choice(["os", "torch", "x"]) + "." * r.randint(0, 1) + r.choice(["a", "Storage", "sys"]),
                    r.choice(["system", "FloatStorage", "run"]))
        return pick(r, GLOBALS)

    # ---- values --------------------------------------------------------------
    def value(self) -> None:
        r = self.rng
        kind = r.randrange(16 if not self.text_only else 6)
        if kind in VALUE_FEATURES and not on("pickle:" + VALUE_FEATURES[kind]):
            kind = 5
        if kind == 0:
            self.emit(b"I" + r.choice(INT_LINES) + b"\n", push="int")
        elif kind == 1:
            self.emit(b"L" + r.choice((b"123L", b"123", b"-1L", b"0x10L", b"", b"5_0")) + b"\n", push="int")
        elif kind == 2:
            self.emit(b"F" + r.choice(FLOAT_LINES) + b"\n", push="float")
        elif kind == 3:
            self.emit(b"S" + r.choice(STRING_LINES) + b"\n", push="str")
        elif kind == 4:
            self.emit(b"V" + r.choice((b"abc", b"\\u00e9", b"\\ud800", b"a\\", b"")) + b"\n", push="str")
        elif kind == 5:
            self.emit(b"N", push="none")
        elif kind == 6:
            self.emit(r.choice((b"J" + struct.pack("<i", r.randint(-5, 1 << 20)), b"K" + bytes([r.randrange(256)]),
                                b"M" + struct.pack("<H", r.randrange(65536)))), push="int")
        elif kind == 7:
            n = r.choice((0, 1, 2, 9))
            self.emit(r.choice((b"\x8a", b"\x8b")) + (bytes([n]) if r.random() < 0.5 else struct.pack("<i", n))
                      + bytes(r.randrange(256) for _ in range(n)), push="int")
        elif kind == 8:
            self.emit(b"G" + struct.pack(">d", r.choice((1.5, float("nan"), -0.0))), push="float")
        elif kind == 9:
            s = r.choice((b"abc", b"storage", b"\xc3\xa9", b"\xff\xfe", b"cpu", b"0"))
            self.emit(r.choice((b"\x8c" + _u(s, 1), b"X" + _u(s, 4), b"\x8d" + _u(s, 8))), push="str")
        elif kind == 10:
            s = r.choice((b"abc", b"\xff", b""))
            self.emit(r.choice((b"C" + _u(s, 1), b"B" + _u(s, 4), b"\x8e" + _u(s, 8), b"\x96" + _u(s, 8))),
                      push="bytes")
        elif kind == 11:
            s = r.choice((b"abc", b"\xe9"))
            self.emit(r.choice((b"U" + _u(s, 1), b"T" + _u(s, 4))), push="str")
        elif kind == 12:
            self.emit(r.choice((b"\x88", b"\x89")), push="bool")
        elif kind == 13:
            self.emit(r.choice((b"]", b"}", b")", b"\x8f")), push=None)
            self.stack.append({b"]": "list", b"}": "dict", b")": "tuple", b"\x8f": "set"}[self.ops[-1]])
        elif kind == 14:
            self.emit(r.choice((b"\x97", b"\x98")), push="buffer")
        else:
            self.emit(b"\x88", push="bool")

    def a_global(self, callee: bool = False) -> None:
        r = self.rng
        mod, name = self.global_name(callee)
        m, n = mod.encode("utf-8"), name.encode("utf-8")
        if r.random() < 0.03 and on("pickle:global-badutf8"):
            m = m + b"\xff"
        way = r.randrange(4 if not self.text_only else 1)
        if not on("pickle:" + ("global", "stack-global", "stack-global", "ext")[way]):
            way = 0
        if way == 0:
            self.emit(b"c" + m + b"\n" + n + b"\n", push="global")
        elif way in (1, 2):
            self.emit(b"\x8c" + _u(m, 1), push="str")
            self.memoize()
            if r.random() < 0.05 and on("pickle:stack-global-nonstr"):
                self.value()
            else:
                self.emit(b"\x8c" + _u(n, 1), push="str")
            self.emit(b"\x93", pops=2, push="global")
        else:
            self.emit(r.choice((b"\x82" + bytes([r.randrange(1, 4)]), b"\x83" + struct.pack("<H", 1),
                                b"\x84" + struct.pack("<i", 7))), push="global")

    # ---- memo ----------------------------------------------------------------
    def memoize(self) -> None:
        r = self.rng
        if not self.stack:
            return
        odd = r.random() >= 0.8 and on("pickle:memo-odd")
        idx = r.choice((0, 1, 255, 256, 70000)) if odd else len(self.memo)
        way = r.randrange(4 if not self.text_only else 1)
        if way == 0:
            line = r.choice((str(idx).encode(), b"0" + str(idx).encode(), b"x"))
            if line != str(idx).encode() and not on("pickle:put-text-odd"):
                line = str(idx).encode()
            self.emit(b"p" + line + b"\n")
        elif way == 1 and idx < 256:
            self.emit(b"q" + bytes([idx]))
        elif way == 2:
            self.emit(b"r" + struct.pack("<I", idx))
        else:
            self.emit(b"\x94")
            idx = len(self.memo)
        self.memo.append(idx)

    def memo_get(self) -> None:
        r = self.rng
        if self.memo and r.random() < 0.9:
            idx = r.choice(self.memo)
        elif on("pickle:memo-missing"):
            idx = r.choice((0, 3, 300))
        else:
            return
        way = r.randrange(3 if not self.text_only else 1)
        if way == 0:
            self.emit(b"g" + str(idx).encode() + b"\n", push="obj")
        elif way == 1 and idx < 256:
            self.emit(b"h" + bytes([idx]), push="obj")
        else:
            self.emit(b"j" + struct.pack("<I", idx), push="obj")

    # ---- structure -----------------------------------------------------------
    def step(self) -> None:
        r = self.rng
        top = self.top()
        choice = r.random()
        loose = r.random() > self.strict and on("pickle:loose")
        if choice < 0.25:
            self.value()
        elif choice < 0.38:
            self.a_global(callee=True)
        elif choice < 0.45:
            self.emit(b"(", push="mark")
        elif choice < 0.5:
            self.memoize()
        elif choice < 0.54 and (self.memo or loose):
            self.memo_get()
        elif choice < 0.62 and (self.since_mark() >= 0 or loose):
            op = r.choice(b"tld\x91e\x90uo" if not self.text_only else b"tldi")
            if (op == ord("i") and not on("pickle:inst")) or (op == ord("o") and not on("pickle:obj")):
                op = ord("t")
            if op == ord("i"):
                mod, name = self.global_name(callee=True)
                self.emit(b"i" + mod.encode() + b"\n" + name.encode() + b"\n")
                self.pop_to_mark("obj")
            else:
                self.emit(bytes([op]))
                kinds = {ord("t"): "tuple", ord("l"): "list", ord("d"): "dict", 0x91: "set", ord("o"): "obj"}
                self.pop_to_mark(kinds.get(op))
        elif choice < 0.7 and (len(self.stack) >= 2 or loose):
            self.call(loose)
        elif choice < 0.76 and (len(self.stack) >= 2 or loose):
            self.build()
        elif choice < 0.8 and (top or loose):
            self.emit(r.choice((b"\x85", b"\x86", b"\x87")) if not self.text_only else b"0", pops=1)
            if self.ops[-1] == b"\x85":
                self.stack.append("tuple")
            elif self.ops[-1] in (b"\x86", b"\x87"):
                self.stack[-1:] = ["tuple"]
        elif choice < 0.84 and (top or loose) and on("pickle:dup"):
            self.emit(b"2", push=top[0] if top else "obj")
        elif choice < 0.86 and (self.marks() or loose) and on("pickle:pop-mark"):
            self.emit(b"1")
            self.pop_to_mark(None)
        elif choice < 0.9 and (top or loose):
            self.emit(b"0", pops=1)
        elif choice < 0.94 and on("pickle:persid"):
            self.persid(loose)
        elif choice < 0.96 and not self.text_only and on("pickle:proto-mid"):
            self.emit(b"\x80" + bytes([r.choice((0, 1, 2, 3, 4, 5, 6))]))
        elif choice < 0.98 and not self.text_only and on("pickle:frame-mid"):
            self.emit(b"\x95" + struct.pack("<Q", r.choice((0, 1, 9, 1 << 40))))
        else:
            self.emit(r.choice((b"\x8f", b"]")), push="set")

    def call(self, loose: bool) -> None:
        r = self.rng
        if not loose:
            self.a_global(callee=True)
            self.emit(r.choice((b")", b"(N" + b"t")), push="tuple")
            if self.ops[-1] == b"(Nt":
                self.stack[-1:] = ["tuple"]
        op = r.choice((b"R", b"R", b"\x81", b"\x92")) if not self.text_only else b"R"
        if (op == b"\x81" and not on("pickle:newobj")) or (op == b"\x92" and not on("pickle:newobj-ex")):
            op = b"R"
        if op == b"\x92" and not loose:
            self.emit(b"}", push="dict")
        self.emit(op, pops=3 if op == b"\x92" else 2, push="obj")

    def build(self) -> None:
        r = self.rng
        form = r.randrange(6)
        if not on("pickle:build-" + ("dict", "slotstate-none", "slotstate", "none", "list", "dict-items")[form]):
            return
        if form == 0:
            self.emit(b"}", push="dict")
        elif form == 1:
            self.emit(b"N}\x86", push="tuple")
        elif form == 2:
            self.emit(b"}}\x86", push="tuple")
        elif form == 3:
            self.emit(b"N", push="none")
        elif form == 4:
            self.emit(b"]", push="list")
        else:
            self.emit(b"}\x8c\x01a\x8c\x01bs", push="dict")
        self.emit(b"b", pops=1)
        if r.random() < 0.3:
            self.emit(b"(" + b"\x8c\x01kK\x01" + r.choice((b"u", b"e")), push=None)
        if r.random() < 0.2:
            self.emit(b"\x8c\x01kK\x01s")
            self.emit(b"K\x01a")

    def persid(self, loose: bool) -> None:
        r = self.rng
        if r.random() < 0.5 or self.text_only:
            self.emit(b"P" + r.choice((b"0", b"storage", b"")) + b"\n", push="obj")
            return
        if not loose:
            self.emit(b"(\x8c\x07storage", push="mark")
            self.a_global()
            self.emit(b"\x8c\x010\x8c\x03cpuK\x02t")
            self.pop_to_mark("tuple")
        self.emit(b"Q", pops=1, push="obj")

    def close(self) -> None:
        """Fold whatever is left into one object, as a pickler would end."""
        while self.marks():
            self.emit(b"t")
            self.pop_to_mark("tuple")
        while len(self.stack) > 1:
            if self.text_only:
                self.emit(b"0", pops=1)
            else:
                self.emit(b"\x86", pops=2, push="tuple")
        if not self.stack:
            self.emit(b"N", push="none")


def frame(rng: random.Random, ops: list[bytes]) -> list[bytes]:
    """Group opcodes into FRAMEs: exact, split mid-opcode, too long, nested, empty."""
    out: list[bytes] = []
    i = 0
    while i < len(ops):
        n = rng.randint(1, 6)
        body = b"".join(ops[i:i + n])
        i += n
        how = rng.random()
        if how < 0.7:
            length = len(body)
        elif how < 0.8:
            length = max(0, len(body) - rng.randint(1, 3))
        elif how < 0.9:
            length = len(body) + rng.randint(1, 40)
        else:
            length = 0
        out.append(b"\x95" + struct.pack("<Q", length) + body)
    return out


def generate(rng: random.Random, *, text_only: bool | None = None) -> tuple[bytes, str]:
    """One pickle stream and a short description."""
    if text_only is None:
        text_only = rng.random() < 0.2
    w = Walk(rng, text_only=text_only, strict=rng.choice((1.0, 0.97, 0.9)))
    for _ in range(rng.randint(1, 30)):
        w.step()
    w.close()
    proto = b"" if text_only or rng.random() < 0.1 else b"\x80" + bytes([rng.choice((2, 2, 3, 4, 4, 5))])
    ops = w.ops + [b"."]
    framed = not text_only and rng.random() < 0.3 and on("pickle:frame")
    if framed:
        ops = frame(rng, ops)
    data = proto + b"".join(ops)
    tail = rng.random()
    desc = f"pickle text={text_only} framed={framed}"
    if tail < 0.08 and on("pickle:truncated"):
        data = data[:rng.randrange(len(data))]
        desc += " truncated"
    elif tail < 0.14 and on("pickle:no-stop"):
        data = data[:-1]
        desc += " no-STOP"
    elif tail < 0.2 and on("pickle:trailing"):
        data += rng.choice((b"\x00garbage", b"\x80\x02cos\nsystem\n.", b"."))
        desc += " trailing"
    return data, desc


def payload(module: str = "os", name: str = "system", arg: str = "true") -> bytes:
    """A classic REDUCE payload (protocol 2)."""
    a = arg.encode()
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + b"\x8c" + _u(a, 1) + b"\x85R."


