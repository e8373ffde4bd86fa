"""Legacy (non-zip) torch files: five pickles, then raw storages; the magic and protocol in every encoding.

torch reads the magic number and protocol version by unpickling them and compares with
``!=``: ``F1001.0`` and ``I0x3e9`` pass as the protocol, ``I01001`` (octal) does not.
"""

from __future__ import annotations

import io
import pickletools
import random
import struct

from . import gen_pickle, structured
from .features import on
from .mutate import mutate_bytes

MAGIC = 0x1950A86A20F9469CFC6C
MAGICS = (
    b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
    b"L" + str(MAGIC).encode() + b"L\n.",
    b"I" + str(MAGIC).encode() + b"\n.",
    b"I" + hex(MAGIC).encode() + b"\n.",
    b"\x80\x02\x8b\x0a\x00\x00\x00l\xfc\x9cF\xf9 j\xa8P\x19.",
    b"\x80\x02\x8a\x0bl\xfc\x9cF\xf9 j\xa8P\x19\x00.",
    b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x18.",
    b"F1.1954703714603880e+23\n.",
    b"\x80\x02K\x01.",
    b"\x80\x05\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
)
PROTOCOLS = (
    b"\x80\x02M\xe9\x03.", b"I1001\n.", b"I0x3e9\n.", b"I01001\n.", b"F1001.0\n.", b"\x80\x02J\xe9\x03\x00\x00.",
    b"\x80\x02\x8a\x02\xe9\x03.", b"L1001L\n.", b"\x80\x02M\xea\x03.", b"I1001L\n.",
    b"\x80\x02G" + struct.pack(">d", 1001.0) + b".",
    b"\x88.",
)


def split_pickles(data: bytes, count: int = 5) -> tuple[list[bytes], bytes]:
    """The first ``count`` pickle streams of a file this process wrote, and the bytes after them."""
    parts: list[bytes] = []
    pos = 0
    for _ in range(count):
        end = pos
        for op, _arg, at in pickletools.genops(io.BytesIO(data[pos:])):
            if op.name == "STOP":
                end = pos + (at or 0) + 1
                break
        parts.append(data[pos:end])
        pos = end
    return parts, data[pos:]


def _pickle(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        mod, name = gen_pickle.pick_callee(rng)
        return gen_pickle.payload(mod, name)
    return gen_pickle.generate(rng)[0]


def ustar_sys_info(prefix: bytes, *, valid_checksum: bool) -> bytes:
    """A sys_info pickle whose string puts ``ustar`` at byte 257 of the file: a tar header to sniffers.

    With ``valid_checksum`` the first 512 bytes are a checksum-valid tar header too, so
    ``tarfile`` (which torch tries first) accepts the file.
    """
    start = len(prefix)
    text_at = start + 7
    body = bytearray(b"0" * (512 - text_at))
    body[257 - text_at:265 - text_at] = b"ustar\x0000"
    body[124 - text_at:136 - text_at] = b"00000000000\x00"
    body[156 - text_at] = ord("0")
    head = bytearray(prefix) + b"\x80\x02X" + struct.pack("<I", len(body)) + body
    head[148:156] = b"        "
    total = sum(head[:512])
    head[148:156] = (b"%06o\x00 " % total) if valid_checksum else b"0000000\x00"
    return bytes(head[start:]) + b"."


def generate(rng: random.Random) -> tuple[bytes, str]:
    data = structured.save(rng, structured.random_object(rng, legacy=True), legacy=True)
    parts, rest = split_pickles(data)
    tricks: list[str] = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        trick = rng.choice(("magic", "protocol", "sys_info", "main", "keys", "storages", "trailing", "text",
                            "truncate", "ustar"))
        if not on(f"legacy:{trick}"):
            continue
        tricks.append(trick)
        if trick == "magic":
            parts[0] = rng.choice(MAGICS)
        elif trick == "protocol":
            parts[1] = rng.choice(PROTOCOLS)
        elif trick == "sys_info":
            parts[2] = _pickle(rng)
        elif trick == "main":
            parts[3] = _pickle(rng)
        elif trick == "keys":
            parts[4] = rng.choice((_pickle(rng), b"\x80\x02]q\x00X\x01\x00\x00\x00xa.", b"\x80\x02N.",
                                   b"\x80\x02]q\x00(X\x01\x00\x00\x000X\x01\x00\x00\x001e."))
        elif trick == "storages":
            rest = rng.choice((b"", rest[: rng.randrange(len(rest) + 1)], struct.pack("<q", 1 << 40) + rest[8:],
                               struct.pack("<q", -1) + rest[8:]))
        elif trick == "trailing":
            rest += _pickle(rng)
        elif trick == "text":
            buf = io.BytesIO()
            import torch

            torch.save(structured.random_object(rng, legacy=True), buf, pickle_protocol=rng.choice((0, 1)),
                       _use_new_zipfile_serialization=False)
            parts, rest = split_pickles(buf.getvalue())
        elif trick == "ustar":
            parts[2] = ustar_sys_info(parts[0] + parts[1], valid_checksum=rng.random() < 0.5)
    if "truncate" in tricks:
        cut = rng.randrange(len(parts))
        parts[cut] = parts[cut][: rng.randrange(len(parts[cut]) + 1)]
        parts, rest = parts[: cut + 1], b""
    out = b"".join(parts) + rest
    if rng.random() < 0.1 and on("legacy:bytes"):
        out = mutate_bytes(rng, out)
        tricks.append("bytes")
    return out, "legacy " + ",".join(tricks or ["plain"])
