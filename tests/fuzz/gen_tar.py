"""The PyTorch 0.1 tar format: ``storages``, ``tensors`` and ``pickle`` members, in V7/ustar/GNU/PAX headers.

torch extracts ``storages`` then ``tensors`` (each a run of small pickles plus raw
records) and unpickles ``pickle`` last; ``tarfile`` takes the last member of a name,
accepts checksum-valid headers without the ``ustar`` magic and fills sparse holes with
zeros. Typeflags are limited to regular files, directories, sparse files and the
long-name/PAX records: the oracle extracts members, and never a device node or FIFO.
"""

from __future__ import annotations

import random
import struct
import tarfile
from typing import Literal

from . import gen_pickle
from .features import on
from .mutate import mutate_bytes

STORAGE_TYPES = (b"FloatStorage", b"HalfStorage", b"LongStorage", b"ByteStorage", b"BadStorage")


def _p(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _str(s: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(s)) + s


def storages_member(rng: random.Random, keys: list[int]) -> bytes:
    out = _p(b"K" + bytes([len(keys)]))
    for k in keys:
        odd = rng.random() < 0.2 and on("tar:storage-type")
        st = rng.choice(STORAGE_TYPES) if odd else b"FloatStorage"
        mod = rng.choice((b"os", b"torch.storage")) if rng.random() < 0.1 and on("tar:storage-module") else b"torch"
        out += _p(b"K" + bytes([k]) + _str(b"cpu") + b"c" + mod + b"\n" + st + b"\n\x87")
        n = rng.choice((0, 1, 2, 4))
        out += struct.pack("<q", n) + bytes(4 * n)
    out += _p(b"]")
    return out


def tensors_member(rng: random.Random, keys: list[int], storage_keys: list[int]) -> bytes:
    out = _p(b"K" + bytes([len(keys)]))
    for k in keys:
        sid = rng.choice(storage_keys) if storage_keys else 0
        out += _p(b"K" + bytes([k]) + b"K" + bytes([sid]) + b"ctorch\nFloatTensor\n\x87")
        out += struct.pack("<i", 1) + bytes(4) + struct.pack("<q", 0) + struct.pack("<q", 1) + struct.pack("<q", 0)
    return out


def pickle_member(rng: random.Random, tensor_keys: list[int]) -> bytes:
    if rng.random() < 0.3 and on("tar:generated-pickle"):
        return gen_pickle.generate(rng)[0]
    body = b"}"
    for i, k in enumerate(tensor_keys):
        body += _str(b"w%d" % i) + _str(str(k).encode()) + b"Qs"
    if rng.random() < 0.4 and on("tar:payload"):
        mod, name = gen_pickle.pick_callee(rng)
        body += _str(b"payload") + b"c" + mod.encode() + b"\n" + name.encode() + b"\n)Rs"
    return _p(body)


def _checksum(header: bytearray) -> None:
    header[148:156] = b"        "
    header[148:156] = b"%06o\x00 " % sum(header[:512])


def gnu_sparse(name: bytes, chunks: list[tuple[int, bytes]], realsize: int) -> bytes:
    """An old-GNU sparse member ('S'): up to four (offset, data) chunks, holes read as zeros."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\x00"
    h[108:116] = h[116:124] = b"0000000\x00"
    data = b"".join(d for _, d in chunks)
    h[124:136] = b"%011o\x00" % len(data)
    h[136:148] = b"00000000000\x00"
    h[156:157] = b"S"
    h[257:265] = b"ustar  \x00"
    for i, (off, d) in enumerate(chunks[:4]):
        base = 386 + 24 * i
        h[base:base + 12] = b"%011o\x00" % off
        h[base + 12:base + 24] = b"%011o\x00" % len(d)
    h[483:495] = b"%011o\x00" % realsize
    _checksum(h)
    return bytes(h) + data + bytes(-len(data) % 512)


def pax_sparse(name: str, chunks: list[tuple[int, bytes]], realsize: int, version: str) -> bytes:
    """A PAX sparse member, GNU format 0.1 (map in a header) or 1.0 (map at the head of the data)."""
    data = b"".join(d for _, d in chunks)
    if version == "0.1":
        headers = {"GNU.sparse.map": ",".join(f"{o},{len(d)}" for o, d in chunks),
                   "GNU.sparse.size": str(realsize), "GNU.sparse.name": name}
    else:
        headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                   "GNU.sparse.realsize": str(realsize)}
        smap = f"{len(chunks)}\n".encode() + b"".join(b"%d\n%d\n" % (o, len(d)) for o, d in chunks)
        data = smap + bytes(-len(smap) % 512) + data
    info = tarfile.TarInfo("GNUSparseFile.0/" + name)
    info.size = len(data)
    info.pax_headers = headers
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + bytes(-len(data) % 512)


def _sparse_of(rng: random.Random, name: bytes, content: bytes) -> bytes:
    """``content`` as a sparse member (old GNU, PAX 0.1 or PAX 1.0) with a hole cut into it."""
    cut = rng.randrange(len(content) + 1)
    hole = rng.choice((0, 1, 5))
    chunks = [(0, content[:cut]), (cut + hole, content[cut:])]
    kind = rng.choice(("gnu", "pax-0.1", "pax-1.0"))
    if kind != "gnu" and on(f"tar:sparse-{kind}"):
        return pax_sparse(name.decode(), chunks, len(content) + hole, kind[4:])
    return gnu_sparse(name, chunks, len(content) + hole)


def _v7(block: bytearray) -> None:
    block[257:265] = bytes(8)
    _checksum(block)


def generate(rng: random.Random) -> tuple[bytes, str]:
    skeys = [100 + i for i in range(rng.randint(0, 3))]
    tkeys = list(range(rng.randint(0, 3)))
    members = {
        "sys_info": _p(b"}" + _str(b"little_endian") + b"\x88s"),
        "storages": storages_member(rng, skeys),
        "tensors": tensors_member(rng, tkeys, skeys),
        "pickle": pickle_member(rng, tkeys),
    }
    order = ["sys_info", "pickle", "tensors", "storages"]
    tricks: list[str] = []
    if rng.random() < 0.3 and on("tar:order"):
        rng.shuffle(order)
        tricks.append("order")
    if rng.random() < 0.2 and on("tar:duplicate"):
        order.append(rng.choice(("pickle", "storages")))
        tricks.append("duplicate")
    if rng.random() < 0.1 and on("tar:missing"):
        order.remove(rng.choice(order))
        tricks.append("missing")
    if rng.random() < 0.05 and on("tar:pickle-polyglot"):
        mod, name = gen_pickle.pick_callee(rng)
        members[f"c{mod}\n{name}\n(S'x'\ntR."] = b""
        order.insert(0, f"c{mod}\n{name}\n(S'x'\ntR.")
        tricks.append("pickle-polyglot")
    fmt: int = rng.choice((tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, -7))
    names = {tarfile.USTAR_FORMAT: "ustar", tarfile.GNU_FORMAT: "gnu", tarfile.PAX_FORMAT: "pax"}
    if not on("tar:" + names.get(fmt, "v7")):
        fmt = tarfile.USTAR_FORMAT
    sparse = rng.random() < 0.15 and on("tar:sparse")
    blocks: list[bytes] = []
    real_fmt: Literal[0, 1, 2] = tarfile.USTAR_FORMAT if fmt < 0 else fmt  # type: ignore[assignment]
    for i, name in enumerate(order):
        content = members[name] if i < len(order) - 1 or "duplicate" not in tricks else gen_pickle.payload()
        if sparse and rng.random() < 0.5:
            blocks.append(_sparse_of(rng, name.encode(), content))
            continue
        long_name = fmt == tarfile.GNU_FORMAT and rng.random() < 0.1 and on("tar:longname")
        info = tarfile.TarInfo(("x" * 120 + "/../" + name) if long_name else name)
        info.size = len(content)
        if fmt == tarfile.PAX_FORMAT and rng.random() < 0.3 and on("tar:pax-path"):
            info.pax_headers = {"path": name, "comment": "x"}
            info.name = "decoy"
        blocks.append(info.tobuf(real_fmt, "utf-8", "surrogateescape") + content + bytes(-len(content) % 512))
    data = bytearray(b"".join(blocks) + bytes(1024))
    desc = f"tar format={fmt} sparse={sparse} " + ",".join(tricks or ["plain"])
    if fmt == -7:
        _v7_all(data)
    if rng.random() < 0.1 and on("tar:bytes"):
        data = bytearray(mutate_bytes(rng, bytes(data)))
        _sanitize(data)
        desc += ",bytes"
    return bytes(data), desc


def _v7_all(data: bytearray) -> None:
    """Strip the ustar magic from every header, keeping checksums valid (tarfile still reads V7)."""
    pos = 0
    while pos + 512 <= len(data) and any(data[pos:pos + 512]):
        block = bytearray(data[pos:pos + 512])
        try:
            size = int(block[124:136].rstrip(b"\x00 ") or b"0", 8)
        except ValueError:
            return
        _v7(block)
        data[pos:pos + 512] = block
        pos += 512 + size + (-size % 512)


def _sanitize(data: bytearray) -> None:
    """After random byte edits: no header may ask tarfile for a link, device node or FIFO."""
    for pos in range(0, len(data) - 511, 512):
        if bytes(data[pos + 156:pos + 157]) in (b"1", b"2", b"3", b"4", b"6", b"K"):
            data[pos + 156] = ord("0")
