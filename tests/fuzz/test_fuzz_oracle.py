"""The oracle's modelled objects behave as the real ones, and the inputs it cannot judge are set aside by rule.

Each modelled behaviour is checked against CPython itself: the same bytes through CPython's
unpickler with the real objects (only ``collections.OrderedDict``, ``builtins.frozenset`` and ``builtins.len``
resolve; any other name raises instead) and through the inert unpickler.
"""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib

import pytest

from . import inert
from .compare import compare
from .nondet import short_deflate_members
from .oracle import CkptlintResult, OracleResult, Reading
from .pool import Pool

pytestmark = pytest.mark.differential

_STOPS = {
    # ADDITEMS on a real OrderedDict: it has no .add (the stand-in had one)
    "additems-ordereddict": b"\x80\x04\x8c\x0bcollections\x8c\x0bOrderedDict\x93)R(K\x01\x90cos\nsystem\n.",
    # BUILD with a dict on frozenset(): no __dict__
    "build-frozenset": b"\x80\x02cbuiltins\nfrozenset\n)R}X\x01\x00\x00\x00aK\x01sbcos\nsystem\n.",
    # calling what len() rejects
    "len-no-args": b"\x80\x02cbuiltins\nlen\n)Rcos\nsystem\n.",
    # calling an instance a call built
    "call-an-instance": b"\x80\x02ccollections\nOrderedDict\n)R)Rcos\nsystem\n.",
}


@pytest.fixture(autouse=True)
def _torch_imported() -> None:
    """The worker imports torch before reading; the allowlist comes from torch's own table."""
    import torch  # noqa: F401


class _RealHarmless(pickle.Unpickler):
    """CPython's unpickler with the real objects, for the three harmless names only; anything else would be
    reached, which the tests rule out (it raises instead of resolving)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in {("collections", "OrderedDict"), ("builtins", "frozenset"), ("builtins", "len")}:
            raise AssertionError(f"real load reached {module}.{name}")
        return super().find_class(module, name)


def _real_outcome(data: bytes) -> str:
    with pytest.raises(Exception) as e:
        _RealHarmless(io.BytesIO(data)).load()
    assert not isinstance(e.value, AssertionError)
    return f"{type(e.value).__name__}: {e.value}"


@pytest.mark.parametrize("name", sorted(_STOPS))
def test_modelled_objects_stop_where_cpython_does(name: str) -> None:
    data = _STOPS[name]
    real = _real_outcome(data)
    inert.reset()
    with pytest.raises(Exception) as e:
        inert.loads(data)
    assert f"{type(e.value).__name__}: {e.value}" == real
    assert ("os", "system") not in inert.REQUESTS
    assert not inert.stopped_on_a_stand_in(real)


def test_placeholders_stay_inert_and_their_stops_are_lower_bounds() -> None:
    """READONLY_BUFFER on what ``os.path.join()`` returned: the stand-in is no buffer, a real value might be."""
    data = b"\x80\x05cos\npath.join\n)R\x98cbuiltins\nlen\n."
    inert.reset()
    with pytest.raises(TypeError) as e:
        inert.loads(data)
    assert inert.REQUESTS == [("os", "path.join")]
    assert inert.stopped_on_a_stand_in(f"TypeError: {e.value}")


def test_a_lower_bound_lets_ckptlint_report_more_never_less() -> None:
    lower = Reading([("os", "path.join")], "TypeError: memoryview: ... not 'join'", undecided=True)
    oracle = OracleResult(lower, lower, False, "refused", False, 0.0)
    more = CkptlintResult("pickle", None, [("os", "path.join", "pickle#0"), ("builtins", "len", "pickle#0")],
                          ["pickle#0"], "pickle#0", False, None, 0.1, 0)
    assert compare("pickle", more, oracle) == []
    less = CkptlintResult("pickle", None, [], ["pickle#0"], "pickle#0", False, None, 0.1, 0)
    assert {d.check for d in compare("pickle", less, oracle)} == {"torch.load globals", "pickle.load globals"}


def _deflated_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 40)
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def test_a_deflated_member_zlib_cannot_inflate_fully_is_found() -> None:
    good = _deflated_zip()
    assert short_deflate_members(good) == []
    info = zipfile.ZipFile(io.BytesIO(good)).getinfo("archive/data.pkl")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    stream = good[start:start + info.compress_size]
    assert zlib.decompress(stream, -15) == b"\x80\x02}q\x00." * 40
    cut = bytearray(good)
    cut[start + 2:start + info.compress_size] = b"\xff" * (info.compress_size - 2)  # corrupt after two bytes
    assert short_deflate_members(bytes(cut)) == ["archive/data.pkl"]
    assert short_deflate_members(b"\x80\x02}.") == []


def test_a_stop_at_a_location_tag_is_compared_with_map_location_cpu() -> None:
    """A legacy file whose storage is tagged 'cpt': plain torch.load raises in default_restore_location,
    torch.load(map_location="cpu") reads on to the next pickle's global; the oracle keeps the second reading."""
    import io as _io

    import torch

    from .gen_legacy import split_pickles

    buf = _io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf, _use_new_zipfile_serialization=False)
    parts, rest = split_pickles(buf.getvalue())
    main = parts[3].replace(b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00cpt")
    data = b"".join(parts[:3]) + main + b"\x80\x02cbuiltins\nlen\n." + parts[4] + rest
    pool = Pool(1, 120.0)
    try:
        reply = pool.one({"data": data.hex(), "family": "legacy", "full": True})
    finally:
        pool.close()
    reading = reply["oracle"]["torch"]
    assert reading["map_location"] == "cpu"
    assert ["builtins", "len"] in reading["globals"]
