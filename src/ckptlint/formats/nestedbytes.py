"""Byte strings a file decodes itself before handing them to a loader (a pickle inside the pickle).

A file may call ``pickle.loads(zlib.decompress(b64decode(...)))`` to hide a payload one level down.
The decoders below are run on our own values the way the named function runs them, so the inner
pickle can be scanned: codecs resolved by name exactly as ``codecs.lookup`` resolves them (aliases,
any standard-library codec: the lookup imports ``encodings.<name>`` modules only), zlib with its
``wbits``, base64/base32/base16/base85 and hex decoders, and the bytes-to-bytes codecs of
``codecs.decode``. Inflating is bounded by what the file's byte budget has left.
"""

from __future__ import annotations

import binascii
import codecs
import zlib
from typing import Any

from ..limits import Budget
from .stubs import Call, Global

NESTED_LOADERS = frozenset({
    "pickle.loads", "_pickle.loads", "pickle._loads", "dill.loads", "dill._dill.loads",
    "cloudpickle.loads", "io.BytesIO", "_io.BytesIO", "torch.load", "torch.serialization.load",
    "joblib.load", "numpy.load", "numpy.loads", "marshal.loads", "pickle.load", "_pickle.load",
})
"""Callables that unpickle (or wrap for unpickling) a byte string they are given."""

_B64 = {"base64.b64decode", "base64.decodebytes", "base64.decodestring", "binascii.a2b_base64",
        "base64.standard_b64decode", "base64.urlsafe_b64decode", "base64.b32decode", "base64.b16decode",
        "base64.b85decode", "base64.a85decode", "binascii.unhexlify", "binascii.a2b_hex"}
_INFLATERS = {"zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress"}
_CODEC_CALLS = {"_codecs.encode", "codecs.encode", "_codecs.decode", "codecs.decode"}
DECODERS = frozenset(_B64 | _INFLATERS | _CODEC_CALLS | {"builtins.bytes.fromhex"})
"""Callables whose result :func:`decoded` computes."""

_BYTES_DECODERS = {"base64": "base64.decodebytes", "hex": "binascii.a2b_hex", "zlib": "zlib.decompress",
                   "bz2": "bz2.decompress"}
"""``codecs.decode(data, name)`` for the bytes-to-bytes codecs whose output may be a pickle."""


def codec(name: Any) -> codecs.CodecInfo | None:
    """The codec ``codecs.lookup`` finds for ``name`` (its search function normalises the name, applies
    ``encodings.aliases`` and imports ``encodings.<module>`` only); None for an unknown name."""
    if not isinstance(name, str) or len(name) > 100:
        return None
    try:
        return codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None


def _errors_ok(errors: Any) -> bool:
    if not isinstance(errors, str):
        return False
    try:
        codecs.lookup_error(errors)
    except LookupError:
        return False
    return True


def _codec_call(qualname: str, args: tuple[Any, ...], budget: Budget | None) -> bytes | None:
    """``_codecs.encode(s, encoding='utf-8', errors='strict')`` with a text codec (str to bytes), or
    ``decode(data, name)`` with a bytes-to-bytes codec (base64, hex, zlib, bz2)."""
    if not args or len(args) > 3:
        return None
    info = codec(args[1] if len(args) > 1 else "utf-8")
    errors = args[2] if len(args) > 2 else "strict"
    if info is None or not _errors_ok(errors):
        return None
    if qualname.endswith(".encode"):
        if not isinstance(args[0], str) or not getattr(info, "_is_text_encoding", True):
            return None
        try:
            out = info.encode(args[0], errors)[0]
        except (UnicodeError, ValueError, TypeError):
            return None
        return out if isinstance(out, bytes) else None
    decoder = _BYTES_DECODERS.get(info.name)  # CodecInfo.name of encodings.base64_codec is "base64" …
    if decoder is None or not isinstance(args[0], (bytes, bytearray, memoryview, str)):
        return None
    return decoded(decoder, (args[0] if isinstance(args[0], str) else bytes(args[0]),), budget)


def _inflate(qualname: str, data: bytes, budget: Budget, wbits: Any) -> bytes | None:
    """Decompress as the named function would, never past what the budget has left."""
    room = max(0, min(budget.limits.max_pickle_bytes, budget.limits.max_inflated_bytes - budget.inflated_bytes))
    errors: tuple[type[Exception], ...] = (zlib.error, OSError, EOFError, ValueError, OverflowError)
    try:
        if qualname == "zlib.decompress":
            d: Any = zlib.decompressobj(wbits if type(wbits) is int else zlib.MAX_WBITS)
        elif qualname == "gzip.decompress":
            d = zlib.decompressobj(wbits=31)
        elif qualname == "bz2.decompress":  # bz2 and lzma load only for a file that calls them (startup)
            import bz2

            d = bz2.BZ2Decompressor()
        else:
            import lzma

            errors += (lzma.LZMAError,)
            d = lzma.LZMADecompressor()
        out: bytes = d.decompress(data, room + 1)
    except errors:  # read when raised: lzma's error is in it once lzma was imported
        return None
    budget.charge_bytes(len(out), f"bytes {qualname} inflates")
    return out


def _decode_b64(qualname: str, data: Any) -> bytes | None:
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        return None
    name = qualname.rsplit(".", 1)[1]
    if qualname.startswith("binascii."):
        fn: Any = getattr(binascii, name, None)
    else:  # base64 loads only for a file that calls it (startup)
        import base64

        fn = getattr(base64, name, None)
    if fn is None:
        return None
    try:
        out: bytes = fn(data)
    except (ValueError, TypeError, binascii.Error):
        return None
    return out


def decoded(qualname: str, args: tuple[Any, ...], budget: Budget | None) -> bytes | None:
    """The bytes a decoder call returns, or None where only running the file could tell."""
    if not args:
        return None
    if qualname in _INFLATERS:
        if budget is None or not isinstance(args[0], (bytes, bytearray, memoryview)):
            return None
        return _inflate(qualname, bytes(args[0]), budget, args[1] if len(args) > 1 else None)
    if qualname in _B64:
        return _decode_b64(qualname, args[0])
    if qualname in _CODEC_CALLS:
        return _codec_call(qualname, args, budget)
    if qualname == "builtins.bytes.fromhex" and isinstance(args[0], str):
        try:
            return bytes.fromhex(args[0])
        except ValueError:
            return None
    return None


def nested_payloads(func: Global, args: tuple[Any, ...]) -> list[bytes]:
    """The byte strings a loader call would unpickle (``io.BytesIO`` wrappers looked through)."""
    out: list[bytes] = []
    for a in args[:2]:
        if isinstance(a, Call) and a.qualname in ("io.BytesIO", "_io.BytesIO") and a.args:
            a = a.args[0]
        if isinstance(a, (bytes, bytearray, memoryview)):
            out.append(_npy_pickle(bytes(a)) if func.module == "numpy" else bytes(a))
    return out


def _npy_pickle(data: bytes) -> bytes:
    """``numpy.load`` of an .npy of objects unpickles what follows its header."""
    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        return data
    if data[6] == 1:
        start = 10 + int.from_bytes(data[8:10], "little")
    else:
        start = 12 + int.from_bytes(data[8:12], "little")
    return data[start:]
