"""Byte-level mutations, applied after the structure-aware ones (and used by the shrinker)."""

from __future__ import annotations

import random

INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\n", b".")


def mutate_bytes(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        if not buf:
            buf += bytes([rng.randrange(256)])
            continue
        i = rng.randrange(len(buf))
        how = rng.randrange(6)
        if how == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            del buf[rng.randrange(len(buf)):]
        elif how == 2:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif how == 3:
            del buf[i:i + rng.randint(1, 16)]
        elif how == 4:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 32)]
        else:
            v = rng.choice(INTERESTING)
            buf[i:i + len(v)] = v
    return bytes(buf)
