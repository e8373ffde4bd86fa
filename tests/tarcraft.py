"""Build PyTorch 0.1 tar checkpoints and legacy torch files byte by byte, as an attacker would.

Pickles are written by hand (protocol 2 opcodes) so no torch object is needed;
tar headers are written by CPython's tarfile and then edited (V7: magic and
version wiped, checksum recomputed; GNU/PAX sparse; longnames; duplicates).
"""

from __future__ import annotations

import struct
import tarfile
from dataclasses import dataclass, field

MAGIC = 0x1950A86A20F9469CFC6C


def uni(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def pint(n: int) -> bytes:
    """A protocol-2 pickle body for an int (BININT1/BININT/LONG1 as pickle would choose)."""
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def p2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def payload(marker: str) -> bytes:
    """A REDUCE of ``os.system('touch <marker>')`` (protocol 2 body, leaves the result on the stack)."""
    return glob("os", "system") + uni(f"touch {marker}") + b"\x85R"


def reduce_call(module: str, name: str) -> bytes:
    """``module.name()``: a harmless call whose global the loader must request."""
    return glob(module, name) + b")R"


@dataclass
class TorchTar:
    """The members of a torch 0.1 tar checkpoint, as bytes; ``objects`` maps tensor key -> (dtype class, numel)."""

    tensors: dict[str, list[float]] = field(default_factory=lambda: {"w": [1.0, 2.0, 3.0]})
    storage_extra: bytes = b""
    """Pickle body run inside the first storage's args pickle (before the tuple is built)."""
    tensors_extra: bytes = b""
    pickle_extra: bytes = b""
    count_extra: bytes = b""

    def storages(self) -> bytes:
        out = p2(self.count_extra + (b"0" if self.count_extra else b"") + pint(len(self.tensors)))
        for i, (_, values) in enumerate(self.tensors.items()):
            extra = (self.storage_extra + b"0") if i == 0 and self.storage_extra else b""
            out += p2(extra + pint(i) + uni("cpu") + glob("torch", "FloatStorage") + b"\x87")
            out += struct.pack("<q", len(values)) + struct.pack(f"<{len(values)}f", *values)
        out += p2(b"]")
        return out

    def tensor_records(self) -> bytes:
        out = p2(pint(len(self.tensors)))
        for i, (_, values) in enumerate(self.tensors.items()):
            extra = (self.tensors_extra + b"0") if i == 0 and self.tensors_extra else b""
            out += p2(extra + pint(100 + i) + pint(i) + glob("torch", "FloatTensor") + b"\x87")
            out += struct.pack("<i", 1) + b"\0" * 4 + struct.pack("<qqq", len(values), 1, 0)
        return out

    def pickle(self) -> bytes:
        body = b"}"
        if self.pickle_extra:
            body = self.pickle_extra + b"0" + body
        for i, name in enumerate(self.tensors):
            body += uni(name) + pint(100 + i) + b"Qs"
        return p2(body)

    def sys_info(self) -> bytes:
        return p2(b"}" + uni("little_endian") + b"\x88s")

    def members(self) -> list[tuple[str, bytes]]:
        return [("sys_info", self.sys_info()), ("pickle", self.pickle()),
                ("tensors", self.tensor_records()), ("storages", self.storages())]


def member_bytes(name: str, data: bytes, fmt: int = tarfile.USTAR_FORMAT, pax: dict[str, str] | None = None,
                 linkname: str = "", type: bytes = tarfile.REGTYPE) -> bytes:
    """One member as tarfile writes it (its headers, then the data padded to 512), no end blocks."""
    ti = tarfile.TarInfo(name)
    ti.size = len(data) if type in (tarfile.REGTYPE, tarfile.XHDTYPE) else 0
    ti.mode = 0o644
    ti.type = type
    ti.linkname = linkname
    if pax:
        ti.pax_headers = dict(pax)
    body = data if type in (tarfile.REGTYPE, tarfile.XHDTYPE) else b""
    head = ti.tobuf(fmt, "utf-8", "surrogateescape")  # type: ignore[arg-type]
    return head + body.ljust((len(body) + 511) // 512 * 512, b"\0")


def tar_bytes(members: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT,
              pax: dict[str, dict[str, str]] | None = None, end: bool = True) -> bytes:
    """Members in order, then (``end``) the two zero blocks that end an archive."""
    out = b"".join(member_bytes(n, d, fmt, (pax or {}).get(n)) for n, d in members)
    return out + (end_blocks() if end else b"")


def set_checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    chk = sum(header[:512])
    header[148:156] = b"%06o\0 " % chk


def to_v7(data: bytes) -> bytes:
    """Every header block of a plain ustar archive rewritten as V7: no ``ustar`` magic, no version."""
    out = bytearray(data)
    off = 0
    while off + 512 <= len(out) and out[off:off + 512] != b"\0" * 512:
        hdr = out[off:off + 512]
        size = int(bytes(hdr[124:136]).rstrip(b"\0 ") or b"0", 8)
        hdr[257:265] = b"\0" * 8
        hdr[265:345] = b"\0" * 80  # uname, gname, devmajor/minor are ustar fields
        set_checksum(hdr)
        out[off:off + 512] = hdr
        off += 512 + (size + 511) // 512 * 512
    return bytes(out)


def pax_sparse_member(name: str, chunks: list[tuple[int, bytes]], realsize: int) -> bytes:
    """A GNU sparse 1.0 member in PAX form: a PAX header with ``GNU.sparse.*`` and the map before the data."""
    smap = f"{len(chunks)}\n" + "".join(f"{off}\n{len(d)}\n" for off, d in chunks)
    mapblock = smap.encode().ljust((len(smap) + 511) // 512 * 512, b"\0")
    data = mapblock + b"".join(d for _, d in chunks)
    return member_bytes(f"GNUSparseFile.0/{name}", data, tarfile.PAX_FORMAT,
                        {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                         "GNU.sparse.realsize": str(realsize)})


def pax_record(key: str, value: str) -> bytes:
    """One PAX record, ``"<len> key=value\\n"`` with the length counting itself."""
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax0_sparse_member(name: str, chunks: list[tuple[int, bytes]], realsize: int, minor: int) -> bytes:
    """GNU sparse 0.0 (repeated ``GNU.sparse.offset``/``numbytes`` records) or 0.1 (``GNU.sparse.map``)."""
    records = pax_record("GNU.sparse.size", str(realsize)) + pax_record("GNU.sparse.name", name)
    if minor == 0:
        records += pax_record("GNU.sparse.numblocks", str(len(chunks)))
        for off, d in chunks:
            records += pax_record("GNU.sparse.offset", str(off)) + pax_record("GNU.sparse.numbytes", str(len(d)))
    else:
        records += pax_record("GNU.sparse.map", ",".join(f"{off},{len(d)}" for off, d in chunks))
    data = b"".join(d for _, d in chunks)
    return (member_bytes("././@PaxHeader", records, type=tarfile.XHDTYPE)
            + member_bytes(f"sparse/{name}", data))


def gnu_old_sparse_member(name: str, chunks: list[tuple[int, bytes]], realsize: int) -> bytes:
    """An old-GNU sparse member (type ``S``): up to four map entries in the header itself."""
    assert len(chunks) <= 4
    data = b"".join(d for _, d in chunks)
    hdr = bytearray(512)
    hdr[0:len(name)] = name.encode()
    hdr[100:108] = b"0000644\0"
    hdr[108:116] = b"0000000\0"
    hdr[116:124] = b"0000000\0"
    hdr[124:136] = b"%011o\0" % len(data)
    hdr[136:148] = b"00000000000\0"
    hdr[156:157] = b"S"
    hdr[257:265] = b"ustar  \0"
    for i, (off, d) in enumerate(chunks):
        base = 386 + 24 * i
        hdr[base:base + 12] = b"%011o\0" % off
        hdr[base + 12:base + 24] = b"%011o\0" % len(d)
    hdr[482:483] = b"\0"  # isextended
    hdr[483:495] = b"%011o\0" % realsize
    set_checksum(hdr)
    return bytes(hdr) + data.ljust((len(data) + 511) // 512 * 512, b"\0")


def end_blocks() -> bytes:
    return b"\0" * 1024


def legacy_file(obj_body: bytes = b"}", magic: bytes | None = None, protocol: bytes | None = None,
                sys_info: bytes | None = None, keys: bytes | None = None, tail: bytes = b"") -> bytes:
    """A legacy (non-tar) torch file: five pickles, each replaceable by raw bytes."""
    return ((magic if magic is not None else p2(pint(MAGIC)))
            + (protocol if protocol is not None else p2(pint(1001)))
            + (sys_info if sys_info is not None else p2(b"}" + uni("little_endian") + b"\x88s"))
            + p2(obj_body) + (keys if keys is not None else p2(b"]")) + tail)
