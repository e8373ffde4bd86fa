"""Generated zips against the real readers: torch.load (weights_only=True) and CPython's zipfile.

A seeded generator varies what the two zip readers can disagree on: duplicate and case-folded
names, ZIP64 records (a second central directory, a locator to nowhere), end-record placement
and comments, deflated members (intact, corrupt, declared too short or too long), local versus
central headers, the entry count, the folder of the first entry and the ``version`` record.
Every copy of ``data.pkl`` holds a different plain value, so torch's answer says which copy it read.

For each input:
- torch loads it  => ckptlint reads it, torch's copy is the one loaded stream, same value, no refusal;
- torch refuses   => ckptlint says so (``facts.extra["torch_refuses"]``) or the file is unreadable;
- zipfile reads another copy than torch (or nothing) => ckptlint reports an anomaly (CK107);
- ckptlint's weights_only verdict is torch's answer, loads or not (unreadable files included).
"""

from __future__ import annotations

import io
import pickle
import random
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ckptlint
from ckptlint.checker import check_file
from ckptlint.errors import CheckpointError

from zipcraft import Craft, Entry, entries_of, torch_members, value_pickle

N = 420
_REST = [e for e in entries_of(torch_members({"x": 0})) if not e.name.endswith(b"/data.pkl")]
_NAMES = [b"archive/data.pkl"] * 4 + [b"archive/DATA.PKL", b"archive/Data.pkl", b"ARCHIVE/data.pkl",
                                      b"archive/data.pk", b"archive/data.pkl\x00x"]


class _Inert(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}")


def _copy(i: int, rng: random.Random) -> Entry:
    e = Entry(rng.choice(_NAMES), value_pickle({"copy": i}), method=rng.choice([0, 0, 8]))
    r = rng.random()
    if e.method == 8 and r < 0.15:
        e.raw = zlib.compress(e.data)[2:-4][:-3] + b"\xff\xff\xff"  # corrupt tail
    elif e.method == 8 and r < 0.3:
        e.size = len(e.data) + rng.choice([-3, 3])
    elif r < 0.4:
        e.local_name = b"archive/other.bin"
    elif r < 0.5:
        e.local_extra = b"\0" * rng.randint(1, 9)
    elif r < 0.55:
        e.crc = 0
    elif r < 0.7:
        e.zip64 = True  # sizes and offset as 0xFFFFFFFF, the values in a ZIP64 extra field
        e.zip64_values = rng.choice([3, 3, 3, 2, 1])  # fewer: miniz's two parses of it differ
    return e


def generate(seed: int) -> bytes:
    rng = random.Random(seed)
    copies = [_copy(i, rng) for i in range(rng.randint(1, 4))]
    rest = [Entry(e.name, e.data) for e in _REST]
    if rng.random() < 0.1:
        rest = [e for e in rest if not e.name.endswith(b"/version")]
    elif rng.random() < 0.1:
        next(e for e in rest if e.name.endswith(b"/version")).data = rng.choice([b"99", b"abc", b"0", b" 3\n"])
    if rng.random() < 0.1:
        sid = next(e for e in rest if e.name.endswith(b"/serialization_id"))
        sid.data = rng.choice([b"\xff\xfe", b"", b"0" * 40, b"\xc3\xa9"])
    for e in rest:
        e.zip64 = rng.random() < 0.05
    if rng.random() < 0.1:
        odd = rng.choice(rest)
        odd.flags, odd.method = rng.choice([(1, 0), (32, 0), (64, 0), (0, 12)])
    entries = copies + rest
    c = Craft()
    for e in entries:
        c.local(e)
    order = list(range(len(entries)))
    rng.shuffle(order)
    if rng.random() < 0.8:  # usually a regular entry first (its folder is the archive's)
        order.remove(len(copies))
        order.insert(0, len(copies))
    listed = [entries[i] for i in order]
    r = rng.random()
    if r < 0.2:  # a second directory behind a ZIP64 locator
        other = [copies[0], *rest]
        cd_classic = c.central(other)
        cd = c.central(listed)
        c.locator(c.eocd64(cd, len(listed)))
        c.eocd(cd_classic, len(other))
    else:
        cd = c.central(listed)
        count = len(listed) - (1 if r < 0.3 else 0)
        if r < 0.45:
            c.locator(c.eocd64(cd, count))
        elif r < 0.5:
            c.locator(10**6)
        comment = rng.choice([b"", b"", b"", b"a comment", b"PK\x05\x06" + b"\0" * 18])
        c.eocd(cd, count, comment=comment)
    t = rng.random()
    if t < 0.15:
        c.raw(b"PK\x05\x06" + b"\0" * rng.randint(0, 17))
    elif t < 0.25:
        c.raw(b"trailing bytes")
    elif t < 0.3:
        c.raw(b"\0" * rng.choice([3_000, 5_000, 60_000, 66_000, 69_000, 70_000]))
    return c.bytes()


def _torch(data: bytes) -> tuple[bool, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return True, torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal counts
        return False, f"{type(e).__name__}: {e}"


def _zipfile(data: bytes) -> Any:
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return _Inert(io.BytesIO(z.read("archive/data.pkl"))).load()
    except Exception as e:  # noqa: BLE001 - any failure is "reads nothing"
        return f"{type(e).__name__}"


@pytest.mark.parametrize("chunk", range(6))  # 6 x 70 inputs, a few seconds each
def test_zip_reading_agrees_with_torch(chunk: int, tmp_path: Path) -> None:
    problems = []
    for seed in range(chunk * N // 6, (chunk + 1) * N // 6):
        data = generate(seed)
        p = tmp_path / f"{seed}.pt"
        p.write_bytes(data)
        ok, value = _torch(data)
        try:
            inv = ckptlint.inspect(p)
        except CheckpointError as e:
            if ok:
                problems.append(f"seed {seed}: torch loads {value!r}, ckptlint: unreadable ({e.reason})")
            elif (v := check_file(p).verdict) is None or v.loads is not False:
                problems.append(f"seed {seed}: unreadable, torch refuses, but the verdict is {v}")
            continue
        refuses = inv.facts.extra.get("torch_refuses")
        if not ok:
            if refuses is None:
                problems.append(f"seed {seed}: torch refuses ({value[:90]}), ckptlint loads "
                                f"{inv.facts.loaded_streams}")
            elif (v := check_file(p).verdict) is None or v.loads is not False:
                problems.append(f"seed {seed}: torch refuses, ckptlint's verdict is {v}")
            continue
        if refuses is not None or len(inv.facts.loaded_streams) != 1 or inv.structure != value:
            problems.append(f"seed {seed}: torch loads {value!r}; ckptlint {inv.structure!r} from "
                            f"{inv.facts.loaded_streams} (refuses: {refuses})")
        elif _zipfile(data) != value and not inv.anomalies:
            problems.append(f"seed {seed}: zipfile reads {_zipfile(data)!r}, torch {value!r}: no anomaly")
        verdict = check_file(p).verdict
        if verdict is None or verdict.loads is not ok:
            problems.append(f"seed {seed}: torch.load(weights_only=True) {'loads' if ok else 'refuses'}, "
                            f"ckptlint's verdict: {verdict}")
    assert not problems, "\n".join(problems[:15])
