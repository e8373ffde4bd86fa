"""Tar and legacy files: ckptlint's reading against torch.load's own, on generated inputs.

Each input is generated from a seed: a PyTorch 0.1 tar checkpoint (ustar, GNU,
PAX or V7 headers; members shuffled, duplicated, renamed through GNU longname or
PAX ``path`` records, stored sparse (PAX 1.0 or old GNU) or as hard links;
archives cut short or with a flipped header byte) or a legacy torch file (magic
number and protocol version in every pickle spelling, right and wrong values,
cut short, behind a ustar-looking header). Harmless calls (``ckfuzz_*.f()``)
sit in every stream torch reads. For each input:

* the globals ckptlint reports in the streams torch loads, in order, equal the
  globals CPython's unpickler requests when driven by ``torch.load(path,
  pickle_module=inert, weights_only=False)`` (inert: find_class returns
  placeholders, imports nothing: tests/fuzz/inert.py);
* a file torch loads is never "unreadable" for ckptlint;
* ckptlint's weights_only verdict equals ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import random
import struct
import sys
import tarfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tarcraft as tc
from ckptlint.errors import CheckpointError
from ckptlint.formats import read_inventory
from ckptlint.inventory import Inventory
from ckptlint.safety.allowlist import allowed_globals, installed_torch_version
from ckptlint.safety.weights_only import predict
from fuzz import inert

N_TAR = 220
N_LEGACY = 180


class _Calls:
    """Harmless calls with distinct names, so each global's position is checked."""

    def __init__(self, rng: random.Random, tag: str) -> None:
        self.rng = rng
        self.tag = tag
        self.n = 0

    def maybe(self, p: float = 0.5) -> bytes:
        if self.rng.random() >= p or not self.tag:
            return b""
        self.n += 1
        return tc.glob(f"ckfuzz_{self.tag}", f"f{self.n}") + b")R"


# ---------------------------------------------------------------- tar inputs

def _sparse_runs(data: bytes, rng: random.Random) -> tuple[list[tuple[int, bytes]], int]:
    """The data as sparse chunks: some runs of zero bytes become holes, sometimes a trailing hole."""
    chunks: list[tuple[int, bytes]] = []
    i = 0
    start = 0
    while i < len(data):
        if data[i] == 0:
            j = i
            while j < len(data) and data[j] == 0:
                j += 1
            if rng.random() < 0.7:
                if i > start:
                    chunks.append((start, data[start:i]))
                start = j
            i = j
        else:
            i += 1
    if start < len(data):
        chunks.append((start, data[start:]))
    if rng.random() < 0.3 and len(chunks) > 1:  # split a chunk without a hole
        k = rng.randrange(len(chunks))
        off, d = chunks[k]
        if len(d) > 1:
            cut = rng.randrange(1, len(d))
            chunks[k:k + 1] = [(off, d[:cut]), (off + cut, d[cut:])]
    realsize = len(data) + (rng.choice([0, 0, 1, 700]) if chunks else 0)
    return chunks or [(0, b"")], realsize


def _member(name: str, data: bytes, rng: random.Random, fmt: int) -> bytes:
    kind = rng.choices(["plain", "longname", "paxpath", "sparse", "gnusparse", "pax00", "pax01", "hardlink"],
                       [6, 1, 1, 1, 1, 1, 1, 1])[0]
    if kind == "longname":
        long = tc.member_bytes("y" * 110, data, tarfile.GNU_FORMAT)
        at = long.index(b"y" * 110)
        return long[:at] + name.encode().ljust(110, b"\0") + long[at + 110:]
    if kind == "paxpath":
        return tc.member_bytes("decoy.txt", data, tarfile.PAX_FORMAT, {"path": name})
    if kind in ("sparse", "gnusparse", "pax00", "pax01"):
        chunks, realsize = _sparse_runs(data, rng)
        if kind in ("pax00", "pax01"):
            return tc.pax0_sparse_member(name, chunks, realsize, 0 if kind == "pax00" else 1)
        if kind == "gnusparse" and len(chunks) <= 4:
            return tc.gnu_old_sparse_member(name, chunks, realsize)
        return tc.pax_sparse_member(name, chunks, realsize)
    if kind == "hardlink":
        return (tc.member_bytes(f"blob_{name}", data, fmt)
                + tc.member_bytes(name, b"", linkname=f"blob_{name}", type=tarfile.LNKTYPE))
    return tc.member_bytes(name, data, fmt)


def _frame_first(member: bytes, rng: random.Random, calls: _Calls) -> bytes:
    """Sometimes re-frame the member's first pickle (protocol 4) with a decoy inside the frame, after STOP:
    the extracted member is read without peek, so torch skips the decoy."""
    if rng.random() > 0.2:
        return member
    stop = member.index(b".")
    body = member[2:stop]
    tail = tc.p2(calls.maybe(1) + b"0" + tc.pint(0)) if rng.random() < 0.7 else b"junk"
    inner = body + b"." + tail
    return b"\x80\x04\x95" + struct.pack("<Q", len(inner)) + inner + member[stop + 1:]


def gen_tar(seed: int) -> bytes:
    rng = random.Random(seed)
    calls = _Calls(rng, "t")
    n = rng.choice([0, 1, 1, 2, 3])
    t = tc.TorchTar(tensors={f"p{i}": [float(rng.choice([0, 1, 2.5])) for _ in range(rng.randrange(1, 4))]
                             for i in range(n)})
    t.count_extra = calls.maybe(0.3)
    t.storage_extra = calls.maybe(0.4) if n else b""
    t.tensors_extra = calls.maybe(0.4) if n else b""
    t.pickle_extra = calls.maybe(0.6)
    members = [(n, _frame_first(d, rng, calls) if n in ("storages", "tensors") else d) for n, d in t.members()]
    rng.shuffle(members)
    if rng.random() < 0.08 and n:  # tensors as a link to storages (torch extracts storages first)
        kind = rng.choice([tarfile.LNKTYPE, tarfile.SYMTYPE])
        members = [m for m in members if m[0] != "tensors"]
        link = tc.member_bytes("tensors", b"", linkname="storages", type=kind)
        return b"".join(tc.member_bytes(a, b) for a, b in members) + link + tc.end_blocks()
    if rng.random() < 0.3:  # a second copy of a member, anywhere
        name = rng.choice(["pickle", "storages", "tensors"])
        other = tc.TorchTar(tensors=t.tensors, pickle_extra=calls.maybe(1), storage_extra=calls.maybe(0.5))
        data = dict(other.members())[name]
        members.insert(rng.randrange(len(members) + 1), (name, data))
    fmt = rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, -1])
    if fmt == -1:
        out = tc.to_v7(tc.tar_bytes(members))
    else:
        out = b"".join(_member(name, data, rng, fmt) for name, data in members) + tc.end_blocks()
    roll = rng.random()
    if roll < 0.06:  # a first header whose name is a protocol-0 pickle; its data runs past the end
        poly = f"cckfuzz_poly\nf{seed}\n)R.".encode()
        head = bytearray(tc.member_bytes("x", b"")[:512])
        head[0:100] = poly.ljust(100, b"\0")
        head[124:136] = b"%011o\0" % (len(out) + 4096)
        tc.set_checksum(head)
        out = bytes(head) + out
    elif roll < 0.1:
        out = out[:rng.randrange(1, len(out))]
    elif roll < 0.25:  # flipped bits: in the first header, or anywhere
        buf = bytearray(out)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(min(len(buf), 512) if rng.random() < 0.4 else len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
        out = bytes(buf)
    return out


# ---------------------------------------------------------------- legacy inputs

def _spell_int(value: int, rng: random.Random, calls: _Calls) -> bytes:
    body = calls.maybe(0.3)
    body = body + b"0" if body else b""
    spelling = rng.choices(["bin", "long_text", "int_text", "float_bin", "float_text", "proto0"],
                           [6, 1, 1, 1, 1, 1])[0]
    if spelling == "long_text":
        return body + b"L%dL\n." % value if not body else b"\x80\x02" + body + b"L%dL\n." % value
    if spelling == "int_text":
        return (b"\x80\x02" if body else b"") + body + b"I%d\n." % value
    if spelling == "float_bin":
        return tc.p2(body + b"G" + struct.pack(">d", float(value)))
    if spelling == "float_text":
        return (b"\x80\x02" if body else b"") + body + b"F%r\n." % float(value)
    if spelling == "proto0":
        return body + b"I%d\n." % value if not body else b"\x80\x02" + body + b"I%d\n." % value
    return tc.p2(body + tc.pint(value))


def _legacy_tensor(key: str, numel: int) -> bytes:
    """``torch._utils._rebuild_tensor_v2(<storage pid>, 0, (numel,), (1,), False, OrderedDict())`` as torch.save
    writes it in the legacy format (protocol 2)."""
    pid = (b"(" + tc.uni("storage") + tc.glob("torch", "FloatStorage") + tc.uni(key) + tc.uni("cpu")
           + tc.pint(numel) + b"Nt" + b"Q")
    return (tc.glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + tc.pint(0) + tc.pint(numel) + b"\x85"
            + tc.pint(1) + b"\x85" + b"\x89" + tc.glob("collections", "OrderedDict") + b")R" + b"tR")


def gen_legacy(seed: int) -> bytes:
    rng = random.Random(seed)
    calls = _Calls(rng, "l" if seed % 3 else "")  # every third file calls nothing: weights_only may load it
    magic = tc.MAGIC if rng.random() < 0.85 else rng.choice([tc.MAGIC + 1, 0, 1001])
    version = 1001 if rng.random() < 0.85 else rng.choice([1000, 1002, -1])
    magic_b = _spell_int(magic, rng, calls)
    if rng.random() < 0.15:  # a ustar-looking first block (bad checksum): torch falls back to this reader
        pad = "u" * 300
        first = tc.p2(tc.uni(pad) + b"0" + tc.pint(magic))
        magic_b = first[:257] + b"ustar" + first[262:]
    obj = b"}"
    for i in range(rng.randrange(3)):
        call = calls.maybe(0.7)
        if call:
            obj += tc.uni(f"k{i}") + call + b"s"
    n = rng.choice([0, 0, 1, 2])
    numel = [rng.randrange(0, 4) for _ in range(n)]
    for i in range(n):
        obj += tc.uni(f"w{i}") + _legacy_tensor(str(i), numel[i])
    sys_info = tc.p2(calls.maybe(0.3) + b"}" + tc.uni("little_endian") + b"\x88s")
    key_list = [str(i) for i in range(n)]
    if n and rng.random() < 0.1:
        key_list.append("nope")
    keys = tc.p2(calls.maybe(0.2) + b"]" + (b"(" + b"".join(tc.uni(k) for k in key_list) + b"e" if key_list else b""))
    on_disk = [c + (rng.choice([-1, 1]) if c and rng.random() < 0.1 else 0) for c in numel]
    raw = b"".join(struct.pack("<q", c) + b"\0" * 4 * c for c in on_disk)
    if raw and rng.random() < 0.15:
        raw = raw[:rng.randrange(len(raw))]
    out = tc.legacy_file(obj_body=obj, magic=magic_b, protocol=_spell_int(version, rng, calls),
                         sys_info=sys_info, keys=keys, tail=raw + rng.choice([b"", b"", b"junk"]))
    if rng.random() < 0.1:
        out = out[:rng.randrange(1, len(out))]
    return out


# ---------------------------------------------------------------- the comparison

def torch_reading(path: Path) -> tuple[list[tuple[str, str]], str]:
    # torch's tar reader reads ``storage_type._dtype``: the inert module hands back torch's own storage classes
    inert.reset(real_storage_classes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(path, pickle_module=inert, weights_only=False)
            outcome = "loaded"
        except Exception as e:  # noqa: BLE001 - the oracle's outcome, whatever it is
            outcome = type(e).__name__
    return list(inert.REQUESTS), outcome


def torch_weights_only(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001
            return False
    return True


def ckptlint_reading(path: Path) -> tuple[list[tuple[str, str]], Inventory | None, str]:
    try:
        inv = read_inventory(path)
    except CheckpointError as e:
        return [], None, e.reason
    loaded = set(inv.facts.loaded_streams)
    return ([(g.module, g.name) for g in inv.globals if g.stream in loaded and ">nested@" not in g.stream],
            inv, "")


CASES = [("tar", s) for s in range(N_TAR)] + [("legacy", s) for s in range(N_LEGACY)]


@pytest.fixture(scope="module")
def results(module_tmp: Path) -> dict[tuple[str, int], dict[str, Any]]:
    d = module_tmp
    allowed = allowed_globals()
    version = installed_torch_version()
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for family, seed in CASES:
        p = d / f"{family}{seed}.pt"
        p.write_bytes(gen_tar(seed) if family == "tar" else gen_legacy(seed))
        treqs, outcome = torch_reading(p)
        creqs, inv, unreadable = ckptlint_reading(p)
        out[(family, seed)] = {
            "path": p, "torch": treqs, "outcome": outcome, "ckptlint": creqs, "unreadable": unreadable,
            "torch_wo": torch_weights_only(p),
            "ck_wo": False if inv is None else predict(inv, allowed, version).loads,
        }
    return out


def _disagreements(results: dict[tuple[str, int], dict[str, Any]], family: str) -> list[str]:
    bad = []
    for (fam, seed), r in results.items():
        if fam != family:
            continue
        if r["torch"] != r["ckptlint"]:
            bad.append(f"{fam} seed {seed}: torch requests {r['torch']} ({r['outcome']}), "
                       f"ckptlint reports {r['ckptlint']} {r['unreadable']}")
        elif r["outcome"] == "loaded" and r["unreadable"]:
            bad.append(f"{fam} seed {seed}: torch loads it, ckptlint says unreadable: {r['unreadable']}")
    return bad


@pytest.mark.parametrize("family", ["tar", "legacy"])
def test_globals_torch_reaches(family: str, results: dict[tuple[str, int], dict[str, Any]]) -> None:
    bad = _disagreements(results, family)
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:15])


@pytest.mark.parametrize("family", ["tar", "legacy"])
def test_the_corpus_exercises_both_outcomes(family: str, results: dict[tuple[str, int], dict[str, Any]]) -> None:
    """The generator is worth its name: files torch loads, files it refuses, payload positions that vary."""
    rs = [r for (fam, _), r in results.items() if fam == family]
    assert sum(r["outcome"] == "loaded" for r in rs) > len(rs) // 3
    assert sum(r["outcome"] != "loaded" for r in rs) > 5
    assert sum(bool(r["torch"]) for r in rs) > len(rs) // 3


@pytest.mark.parametrize("family", ["tar", "legacy"])
def test_weights_only_verdict(family: str, results: dict[tuple[str, int], dict[str, Any]]) -> None:
    bad = [f"{fam} seed {seed}: torch weights_only loads={r['torch_wo']}, ckptlint says {r['ck_wo']}"
           for (fam, seed), r in results.items() if fam == family and r["torch_wo"] != r["ck_wo"]]
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:15])


def test_named_spellings_are_the_ones_torch_accepts(tmp_path: Path) -> None:
    """tests/test_legacy_encodings.py's magic and protocol spellings all load in torch, and ckptlint reads on."""
    from test_legacy_encodings import MAGIC_SPELLINGS, PROTOCOL_SPELLINGS

    files = [tc.legacy_file(magic=m) for m in MAGIC_SPELLINGS.values()]
    files += [tc.legacy_file(protocol=v) for v in PROTOCOL_SPELLINGS.values()]
    for i, data in enumerate(files):
        p = tmp_path / f"s{i}.pt"
        p.write_bytes(data)
        assert torch_reading(p)[1] == "loaded"
        assert read_inventory(p).facts.loaded_streams == tuple(f"pickle#{k}" for k in range(5))


@pytest.mark.parametrize("later", ["real", "fake"])
def test_overlapping_sparse_chunks_the_last_written_wins(tmp_path: Path, later: str) -> None:
    """``TarFile.makefile`` writes sparse chunks in map order: where they overlap, the later chunk's bytes are read."""
    t = tc.TorchTar(storage_extra=tc.reduce_call("real", "f"))
    st = t.storages()
    decoy = tc.TorchTar(storage_extra=tc.reduce_call("fake", "f")).storages()
    k = st.index(b"real")
    patch = (k, st[k:k + 4])
    chunks = [(0, decoy), patch] if later == "real" else [patch, (0, decoy)]
    members = [(n, d) for n, d in t.members() if n != "storages"]
    p = tmp_path / "overlap.pt"
    p.write_bytes(tc.tar_bytes(members, end=False) + tc.pax0_sparse_member("storages", chunks, len(st), 1)
                  + tc.end_blocks())
    torch_requests = torch_reading(p)[0]
    assert (later, "f") in torch_requests
    assert ckptlint_reading(p)[0] == torch_requests


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_storage_is_the_float_storage(tmp_path: Path, zip_format: bool) -> None:
    """fuzz seed 41 index 25090: a persistent id naming ``torch.Storage``. ``StorageType("Storage")`` fails, so
    torch's UnpicklerWrapper imports the real ``torch.Storage``, which is ``torch.FloatStorage`` (dtype float32):
    torch goes on past it (ckptlint stopped: "has no dtype"), and the globals after it are reached."""
    p = tmp_path / "alias.pt"
    torch.save({"w": torch.ones(3), "later": torch.zeros(2, dtype=torch.int64)}, p,
               _use_new_zipfile_serialization=zip_format)
    data = p.read_bytes()
    if zip_format:
        import io
        import zipfile
        src = zipfile.ZipFile(io.BytesIO(data))
        with zipfile.ZipFile(p, "w") as out:
            for info in src.infolist():
                body = src.read(info)
                if info.filename.endswith("/data.pkl"):
                    body = body.replace(b"ctorch\nFloatStorage\n", b"ctorch\nStorage\n")
                out.writestr(info, body)
    else:
        p.write_bytes(data.replace(b"ctorch\nFloatStorage\n", b"ctorch\nStorage\n"))
    torch_globals, outcome = torch_reading(p)
    assert outcome == "loaded" and ("torch", "Storage") in torch_globals
    ck_globals, inv, reason = ckptlint_reading(p)
    assert reason == "" and inv is not None and not inv.stops  # was: stop at "torch.Storage has no dtype"
    assert ck_globals == torch_globals


def test_torch_storage_in_a_tar_storages_member(tmp_path: Path) -> None:
    """The tar reader's ``storage_type._dtype`` of ``torch.Storage`` (plain pickle.load imports it): FloatStorage's."""
    t = tc.TorchTar()
    members = [(n, d.replace(tc.glob("torch", "FloatStorage"), tc.glob("torch", "Storage")) if n == "storages" else d)
               for n, d in t.members()]
    p = tmp_path / "alias.tar.pt"
    p.write_bytes(tc.tar_bytes(members))
    torch_globals, outcome = torch_reading(p)
    assert outcome == "loaded" and ("torch", "Storage") in torch_globals
    ck_globals, inv, reason = ckptlint_reading(p)
    assert reason == "" and inv is not None and not inv.stops  # was: "static reading stops" at torch.Storage
    assert ck_globals == torch_globals
