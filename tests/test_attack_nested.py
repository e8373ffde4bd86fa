"""Issue #11, nested payloads: a pickle that hands ``pickle.loads`` bytes it decodes itself, with the
codec spellings and arguments CPython accepts (codec aliases, any standard-library text codec,
zlib's ``wbits``, base64 of a str, ``bytes``/``bytearray``/``memoryview`` of the bytes,
``codecs.decode`` with base64/zlib/hex, ``bytes.fromhex``). ckptlint must name the inner payload, as
it does for the plain spellings (tests/test_pickle_nested.py).

One throwaway subprocess proves that ``pickle.load`` reaches each inner payload (it only runs
``touch MARKER`` in a working directory of its own per file).
"""

from __future__ import annotations

import base64
import gzip
import json
import textwrap
import zlib
from pathlib import Path

import pytest

import ckptlint
from _pickle_attack import binbytes, g, su, system_call

from conftest import python_process

pytestmark = pytest.mark.integration  # the marker proof runs pickle.load in a subprocess

INNER = b"\x80\x02" + system_call(Path("MARKER")) + b"."
INNER_UTF8 = b"C\x03\xe2\x82\xac0" + system_call(Path("MARKER"), proto0=True) + b"."
"""Valid UTF-8, and SHORT_BINBYTES counts bytes: decoded any other way the stream breaks before the payload."""


def call(module: str, name: str, *args: bytes) -> bytes:
    return g(module, name) + b"(" + b"".join(args) + b"tR"


def loads(arg: bytes) -> bytes:
    return b"\x80\x03" + call("pickle", "loads", arg) + b"."


def encoded(codec: str, inner: bytes = INNER) -> bytes:
    """``pickle.loads(_codecs.encode(<inner as text>, codec))``."""
    return loads(call("_codecs", "encode", su(inner.decode(codec)), su(codec)))


def _raw_deflate(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


CASES: dict[str, bytes] = {
    # codec aliases CPython's codec registry accepts (encodings.aliases)
    **{f"encode_{c}": encoded(c, INNER_UTF8) for c in ("cp65001", "utf", "utf8_ucs4")},
    **{f"encode_{c}": encoded(c) for c in ("cp819", "8859", "iso_ir_100", "csisolatin1")},
    # any standard-library single-byte codec that can spell the bytes
    **{f"encode_{c}": encoded(c) for c in ("cp437", "cp850", "mac_roman")},
    # zlib.decompress(data, wbits): raw deflate, gzip framing, automatic header detection
    "zlib_wbits_raw": loads(call("zlib", "decompress", binbytes(_raw_deflate(INNER)), b"J\xf1\xff\xff\xff")),
    "zlib_wbits_gzip": loads(call("zlib", "decompress", binbytes(gzip.compress(INNER)), b"K\x1f")),
    "zlib_wbits_auto": loads(call("zlib", "decompress", binbytes(zlib.compress(INNER)), b"K\x2f")),
    # the bytes passed through a conversion that keeps them (pickle.loads takes any buffer)
    **{f"through_{f}": loads(call("builtins", f, binbytes(INNER))) for f in ("bytes", "bytearray", "memoryview")},
    # codecs.decode with a bytes-to-bytes codec, and bytes.fromhex (STACK_GLOBAL "builtins" "bytes.fromhex")
    "codecs_decode_base64": loads(call("_codecs", "decode", binbytes(base64.b64encode(INNER)), su("base64"))),
    "codecs_decode_zlib": loads(call("codecs", "decode", binbytes(zlib.compress(INNER)), su("zlib"))),
    "codecs_decode_hex": loads(call("_codecs", "decode", su(INNER.hex()), su("hex"))),
    "bytes_fromhex": b"\x80\x04" + su("pickle") + su("loads") + b"\x93(" + su("builtins") + su("bytes.fromhex")
                     + b"\x93(" + su(INNER.hex()) + b"tRtR.",
    # base64 of a str argument, and the URL-safe alphabet
    "b64decode_str": loads(call("base64", "b64decode", su(base64.b64encode(INNER).decode()))),
    "urlsafe_b64decode": loads(call("base64", "urlsafe_b64decode", binbytes(base64.urlsafe_b64encode(INNER)))),
}

PROOF = textwrap.dedent("""
    import json, os, pickle, sys
    out = {}
    for path in sys.argv[1:]:
        os.chdir(os.path.dirname(path))
        try:
            with open(path, "rb") as f:
                pickle.load(f)
        except BaseException:
            pass
        out[path] = os.path.exists("MARKER")
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nested")
    files = {}
    for name, data in CASES.items():
        (root / name).mkdir()
        files[name] = root / name / "outer.pkl"
        files[name].write_bytes(data)
    return files


@pytest.fixture(scope="module")
def reached(corpus: dict[str, Path]) -> dict[str, bool]:
    proc = python_process("-c", PROOF, *corpus.values(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, bool] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_inner_payload_is_named(name: str, corpus: dict[str, Path], reached: dict[str, bool]) -> None:
    path = corpus[name]
    assert reached[str(path)] is True, "pickle.load never reached the inner payload"
    (path.parent / "MARKER").unlink()
    inv = ckptlint.inspect(path)
    assert not (path.parent / "MARKER").exists(), "ckptlint executed the file"
    nested = {r.qualname for r in inv.globals if ">nested@" in r.stream}
    assert nested & {"os.system", "posix.system"}, sorted((r.qualname, r.stream) for r in inv.globals)
