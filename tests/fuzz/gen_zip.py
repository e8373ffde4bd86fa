"""Zip inputs: torch.save archives rebuilt with the tricks readers disagree on.

Duplicate and case-folded names, ZIP64 records (and a second central directory behind
one), EOCD placement and comments, deflated members (valid and corrupt), local/central
header mismatches, prefixed data, member order, and data.pkl swapped for a generated
or payload-carrying pickle.
"""

from __future__ import annotations

import random
import re

from . import gen_pickle, structured
from .features import on
from .mutate import mutate_bytes
from .zipbuild import EOCD, Layout, Member, build


def _case(rng: random.Random, name: str) -> str:
    how = rng.randrange(3)
    if how == 0:
        return name.upper()
    if how == 1:
        return name.swapcase()
    head, _, tail = name.rpartition("/")
    return head + "/" + tail.upper() if head else tail.upper()


def _pickle(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        mod, name = gen_pickle.pick_callee(rng)
        return gen_pickle.payload(mod, name)
    return gen_pickle.generate(rng)[0]


SWAPS = (("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"))
DICT_LIKE = (("builtins", "dict"), ("__builtin__", "dict"), ("collections", "Counter"), ("collections", "defaultdict"),
             ("collections", "OrderedDict"), ("typing", "OrderedDict"))
"""Names whose empty call takes the OrderedDict's SETITEMS and BUILD (a set would not: CPython stops there,
while the oracle's stand-in would not, see docs/fuzzing.md). Sets under ``__builtin__.set`` come from
torch.save itself: protocol 2 writes Python 3 sets with that spelling."""
REFUSED = (("builtins", "eval"), ("os", "system"), ("numpy", "dtype"), ("torch", "load"), ("__builtin__", "eval"),
           ("torch._utils", "_rebuild_tensor_v2.__globals__"), ("posix", "system"))


def swap_global(rng: random.Random, data: bytes) -> bytes:
    """Replace one GLOBAL (protocol 0-3 ``c`` lines, as torch writes them) by another name.

    Only names the call would accept: OrderedDict() becomes another empty container (allowed,
    protocol-2 spellings, or not on torch's list); a rebuild function becomes a refused name.
    A swap that makes the call itself raise would test argument checking, not weights_only."""
    old = rng.choice(SWAPS)
    needle = b"c%s\n%s\n" % (old[0].encode(), old[1].encode())
    if needle not in data:
        return data
    new = rng.choice(DICT_LIKE if old[1] == "OrderedDict" else REFUSED)
    return data.replace(needle, b"c%s\n%s\n" % (new[0].encode(), new[1].encode()), 1)


def _index(members: list[Member], suffix: str) -> int:
    for i, m in enumerate(members):
        if m.name.endswith(suffix.encode()):
            return i
    return 0


def generate(rng: random.Random) -> tuple[bytes, str]:
    base = structured.zip_members(structured.save(rng, structured.random_object(rng)))
    members = [Member(n.encode(), d) for n, d in base]
    lay = Layout()
    tricks: list[str] = []
    pkl = _index(members, "/data.pkl")
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        trick = rng.choice(("dup", "case", "zip64", "second_cd", "eocd", "deflate", "local", "prefix", "pickle",
                            "byteorder", "order", "archive_name", "crc", "drop", "descriptor", "swap-global",
                            "record-size", "newobj", "torchscript"))
        if not on(f"zip:{trick}"):
            continue
        tricks.append(trick)
        target = pkl if rng.random() < 0.7 else rng.randrange(len(members))
        m = members[target]
        if trick == "dup":
            copy = Member(m.name, _pickle(rng) if m.name.endswith(b".pkl") else m.data + b"x")
            members.insert(rng.choice((target, target + 1, len(members))), copy)
        elif trick == "case":
            members.insert(rng.randrange(len(members) + 1),
                           Member(_case(rng, m.name.decode()).encode(), _pickle(rng)))
        elif trick == "zip64":
            for mm in rng.sample(members, k=rng.randint(1, len(members))):
                mm.zip64 = True
            lay.zip64_eocd = rng.random() < 0.7
            lay.classic_overflow = rng.random() < 0.5
        elif trick == "second_cd":
            other = Member(m.name, _pickle(rng))
            members.append(other)
            lay.central_order = list(range(len(members) - 1))
            second = [i for i in range(len(members) - 1) if i != target] + [len(members) - 1]
            lay.second_central = second
            lay.classic_overflow = rng.random() < 0.3
        elif trick == "eocd":
            how = rng.randrange(4)
            if how == 0:
                lay.comment = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            elif how == 1:
                lay.comment = b"xx" + EOCD + bytes(18) + b"yy"
            elif how == 2:
                lay.comment, lay.comment_len = b"abc", rng.choice((0, 1, 2, 10, 0xFFFF))
            else:
                lay.trailing = rng.choice((b"\x00" * rng.randint(1, 30), EOCD, EOCD + bytes(18), b"junk"))
        elif trick == "deflate":
            m.method = 8
            if rng.random() < 0.3:
                body = m.payload()
                m.raw = body[: rng.randrange(len(body) + 1)] + bytes(rng.randrange(256) for _ in range(3))
        elif trick == "local":
            how = rng.randrange(4)
            if how == 0:
                m.local_name = _case(rng, m.name.decode()).encode() if rng.random() < 0.5 else b"x/other.pkl"
            elif how == 1:
                m.local_method = 8 if m.method == 0 else 0
            elif how == 2:
                m.local_csize = len(m.data) + rng.choice((-1, 1, 100))
            else:
                m.local_extra = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
        elif trick == "prefix":
            lay.prefix = gen_pickle.payload() if rng.random() < 0.5 else b"#!/bin/sh\n" + bytes(rng.randint(0, 20))
            lay.offsets_relative_to_prefix = rng.random() < 0.5
        elif trick == "pickle":
            members[pkl].data = _pickle(rng)
        elif trick == "byteorder":
            i = _index(members, "/byteorder")
            if members[i].name.endswith(b"/byteorder"):
                members[i].data = rng.choice((b"big", b"middle", b"", b"little\n", b"LITTLE"))
        elif trick == "order":
            if rng.random() < 0.5:
                rng.shuffle(members)
                pkl = _index(members, "/data.pkl")
            else:
                lay.central_order = rng.sample(range(len(members)), len(members))
        elif trick == "archive_name":
            first = members[0]
            rest = first.name.split(b"/", 1)[1] if b"/" in first.name else first.name
            first.name = rng.choice((b"other/", b"", b"../", b"/")) + rest
        elif trick == "crc":
            m.crc = (m.crc or 0) ^ 1
        elif trick == "descriptor":
            m.descriptor = True
        elif trick == "swap-global":
            members[pkl].data = swap_global(rng, members[pkl].data)
        elif trick == "torchscript":
            folder = members[pkl].name.rsplit(b"/", 1)[0] if b"/" in members[pkl].name else b"archive"
            name = rng.choice((b"/constants.pkl", b"/CONSTANTS.PKL", b"/constants.pkl/", b"/x/constants.pkl"))
            members.insert(rng.randrange(len(members) + 1), Member(folder + name, _pickle(rng)))
        elif trick == "newobj":
            members[pkl].data = re.sub(rb"(ccollections\nOrderedDict\n(?:q.|r....)?\))R",
                                       lambda mo: mo.group(1) + b"\x81", members[pkl].data, count=1, flags=re.S)
        elif trick == "record-size":
            records = [mm for mm in members if b"/data/" in mm.name]
            if records:
                rec = rng.choice(records)
                rec.data = rec.data[: rng.randrange(len(rec.data) + 1)] if rng.random() < 0.5 else rec.data + b"\0" * 4
        elif trick == "drop" and len(members) > 1:
            del members[target]
            pkl = _index(members, "/data.pkl")
    if lay.central_order is not None:
        lay.central_order = [i for i in lay.central_order if i < len(members)]
    if lay.second_central is not None:
        lay.second_central = [i for i in lay.second_central if i < len(members)]
    data = build(members, lay)
    if rng.random() < 0.1 and on("zip:bytes"):
        data = mutate_bytes(rng, data)
        tricks.append("bytes")
    return data, "zip " + ",".join(tricks or ["plain"])
