"""Pickles inside pickles: the bytes a file hands to ``pickle.loads`` and friends are followed through
the encodings and decompressions the file itself applies, decoded exactly as the file decodes them."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

import ckptlint
from _pickle_attack import SYSTEM, binbytes, g, inspect_and_check, reaches, su, system_call, write
from ckptlint import Limits

pytestmark = pytest.mark.integration  # each proof runs the real loader in a subprocess


def _call(module: str, name: str, *args: bytes) -> bytes:
    return g(module, name) + b"(" + b"".join(args) + b"tR"


def _nested_globals(inv: ckptlint.Inventory) -> set[str]:
    return {r.qualname for r in inv.globals if ">nested@" in r.stream}


def _inner(marker: Path) -> bytes:
    return b"\x80\x02" + system_call(marker) + b"."


INFLATERS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": zlib.compress, "gzip": gzip.compress, "bz2": bz2.compress, "lzma": lzma.compress,
}


@pytest.mark.parametrize("module", sorted(INFLATERS))
def test_compressed_inner_pickle(tmp_path: Path, module: str) -> None:
    marker = tmp_path / "ran.marker"
    packed = INFLATERS[module](_inner(marker))
    outer = b"\x80\x03" + _call("pickle", "loads", _call(module, "decompress", binbytes(packed))) + b"."
    p = write(tmp_path, f"{module}.pkl", outer)
    assert reaches(p, marker)
    inv, report = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM
    assert any(f.code == "CK101" and "system" in f.message for f in report.findings)


def test_base64_then_zlib(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    blob = base64.b64encode(zlib.compress(_inner(marker)))
    outer = (b"\x80\x03" + _call("pickle", "loads", _call("zlib", "decompress", _call("base64", "b64decode",
                                                                                       binbytes(blob)))) + b".")
    p = write(tmp_path, "b64.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM


def test_codecs_encode_uses_the_files_encoding(tmp_path: Path) -> None:
    # The inner pickle is valid UTF-8 but its first opcode (SHORT_BINBYTES) counts bytes: read as
    # latin-1 (one byte for the euro sign instead of three) the stream falls apart before the payload.
    marker = tmp_path / "ran.marker"
    inner = b"C\x03\xe2\x82\xac0" + system_call(marker, proto0=True) + b"."
    text = inner.decode("utf-8")
    outer = b"\x80\x03" + _call("pickle", "loads", _call("_codecs", "encode", su(text), su("utf-8"))) + b"."
    p = write(tmp_path, "utf8.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM


def test_codecs_encode_latin1(tmp_path: Path) -> None:
    # protocol-2 inner pickle: its bytes >= 0x80 only survive a latin-1 round trip
    marker = tmp_path / "ran.marker"
    text = _inner(marker).decode("latin-1")
    outer = b"\x80\x03" + _call("pickle", "loads", _call("_codecs", "encode", su(text), su("latin1"))) + b"."
    p = write(tmp_path, "latin1.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM


def test_pickle_load_of_bytesio(tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    outer = b"\x80\x03" + _call("pickle", "load", _call("io", "BytesIO", binbytes(_inner(marker)))) + b"."
    p = write(tmp_path, "bytesio.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM


def test_numpy_load_of_an_object_npy(tmp_path: Path) -> None:
    # numpy.load(BytesIO(npy), None, True): an object array's data is a pickle after the .npy header
    marker = tmp_path / "ran.marker"
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + _inner(marker)
    outer = (b"\x80\x03" + _call("numpy", "load", _call("io", "BytesIO", binbytes(npy)), b"N\x88") + b".")
    p = write(tmp_path, "npy.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM


def test_nested_inflation_is_charged_to_the_file_budget(tmp_path: Path) -> None:
    # A small zlib blob that inflates past the budget: refused with the limit named, nothing more read.
    bomb = zlib.compress(b"\x80\x02" + b"N0" * 200_000 + b"N.")
    outer = b"\x80\x03" + _call("pickle", "loads", _call("zlib", "decompress", binbytes(bomb))) + b"."
    p = write(tmp_path, "bomb.pkl", outer)
    inv = ckptlint.inspect(p, limits=Limits(max_inflated_bytes=100_000))
    assert [s.limit for s in inv.stops] == ["max_inflated_bytes"]
    assert {"pickle.loads", "zlib.decompress"} <= {r.qualname for r in inv.globals}


def _stack_global(module: str, name: str) -> bytes:
    return su(module) + su(name) + b"\x93"


DECODERS: dict[str, Callable[[bytes], bytes]] = {
    # codecs.decode with a bytes-to-bytes codec (aliases as codecs.lookup resolves them)
    "_codecs.decode base64": lambda inner: _call("_codecs", "decode", binbytes(base64.b64encode(inner)),
                                                 su("base64")),
    "codecs.decode zlib": lambda inner: _call("codecs", "decode", binbytes(zlib.compress(inner)), su("zlib")),
    "_codecs.decode hex of a str": lambda inner: _call("_codecs", "decode", su(inner.hex()), su("hex")),
    "bytes.fromhex": lambda inner: _stack_global("builtins", "bytes.fromhex") + su(inner.hex()) + b"\x85R",
    # an alias of latin-1 only the codec registry knows
    "_codecs.encode cp819": lambda inner: _call("_codecs", "encode", su(inner.decode("latin-1")), su("cp819")),
}


@pytest.mark.parametrize("how", sorted(DECODERS))
def test_decoders_the_file_applies(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran.marker"
    outer = b"\x80\x04" + _call("pickle", "loads", DECODERS[how](_inner(marker))) + b"."
    p = write(tmp_path, "decoded.pkl", outer)
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM, sorted((r.qualname, r.stream) for r in inv.globals)


def test_zlib_wbits_argument(tmp_path: Path) -> None:
    # zlib.decompress(data, -15): raw deflate, no zlib header; the default wbits would refuse it
    marker = tmp_path / "ran.marker"
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = co.compress(_inner(marker)) + co.flush()
    outer = b"\x80\x03" + _call("pickle", "loads", _call("zlib", "decompress", binbytes(raw), b"J\xf1\xff\xff\xff"))
    p = write(tmp_path, "raw.pkl", outer + b".")
    assert reaches(p, marker)
    inv, _ = inspect_and_check(p, marker)
    assert _nested_globals(inv) & SYSTEM
