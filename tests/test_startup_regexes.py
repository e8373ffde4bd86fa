"""What the check path does by hand (no regex compiled, no codec looked up at import) agrees with what it replaces."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from ckptlint.formats.torchload_zip import stoull
from ckptlint.formats.zipmember import _py_decode
from ckptlint.rule import CODE_PATTERN, is_code


def _stoull_regex(text: bytes) -> int | None:
    m = re.match(rb"\s*[+-]?\d+", text)
    return None if m is None else int(m.group())


def test_stoull_is_the_regex() -> None:
    alphabet = [b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\xa0", b"+", b"-", b"0", b"7", b"9", b"_",
                b"a", b"\x00", b"\xd9\xa1"]
    samples = [b"".join(t) for n in range(4) for t in itertools.product(alphabet, repeat=n)]
    rng = random.Random(14)
    samples += [b"".join(rng.choices(alphabet, k=rng.randrange(12))) for _ in range(5000)]
    for text in samples:
        assert stoull(text) == _stoull_regex(text), text


@pytest.mark.parametrize("text", [b"1" * 4300, b" -" + b"9" * 4301])
def test_stoull_keeps_ints_digit_limit(text: bytes) -> None:
    try:
        expected: object = _stoull_regex(text)
    except ValueError as e:
        expected = type(e)
    try:
        got: object = stoull(text)
    except ValueError as e:
        got = type(e)
    assert got == expected


def test_is_code_is_the_regex() -> None:
    alphabet = ["A", "C", "K", "Z", "a", "0", "1", "9", "\n", " ", "\u0661", "\u00c4", "_"]
    samples = ["".join(t) for n in range(7) for t in itertools.product(alphabet[:8], repeat=n) if n < 5 or
               t[0] in "ACK"]
    rng = random.Random(14)
    samples += ["".join(rng.choices(alphabet, k=rng.randrange(9))) for _ in range(20000)]
    samples += ["CK101", "CK101\n", "CK101\n\n", "\nCK101", "ABCD123", "CK1011", "X001", "CK10"]
    for code in samples:
        assert is_code(code) == (re.match(CODE_PATTERN, code) is not None), repr(code)


def test_is_code_fails_as_re_does_on_bytes() -> None:
    with pytest.raises(TypeError):
        is_code(b"CK101")  # type: ignore[arg-type]


def test_py_decode_is_zipfiles_decoding() -> None:
    rng = random.Random(437)
    names = [bytes(rng.choices(range(256) if k % 2 else range(128), k=rng.randrange(12))) for k in range(4000)]
    for raw in names + [b"archive/data.pkl", b"a\x00b", b"\xff", b"", "é".encode()]:
        for flags in (0, 0x800, 0x808):
            expected = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace").split("\x00", 1)[0]
            assert _py_decode(raw, flags) == expected, (raw, flags)
