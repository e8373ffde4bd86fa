"""The static pickle machine against CPython's C unpickler, on generated streams.

Streams are generated from a grammar that uses every opcode (EXT codes aside: they resolve through
the loading process's copyreg registry, which ckptlint deliberately treats as unknown globals), then
framed (FRAME at opcode boundaries, straddling them, nested, past the end), memoised (PUT, BINPUT,
LONG_BINPUT, MEMOIZE and the GETs), BUILT (on calls, on sets, with slot state) and broken (truncated,
tail bytes replaced, a byte flipped). The oracle is an inert ``pickle.Unpickler`` whose ``find_class``
returns placeholder classes and imports nothing (``builtins.set`` aside: the real class): it records which
globals CPython requests, in order.

For every stream: when CPython loads it, ckptlint reports exactly those globals and no stop; when
CPython raises, ckptlint reports every global CPython requested before raising (in order) and stops.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from _pickle_gen import case

import ckptlint
from ckptlint import CheckpointError

# ---- the oracle ------------------------------------------------------------------


class _Meta(type):
    """Placeholders are classes (so NEWOBJ accepts them) whose metaclass takes every container call."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _placeholder()

    def __setstate__(cls, state: Any) -> None:
        pass

    def append(cls, item: Any) -> None:
        pass

    def extend(cls, items: Any) -> None:
        pass

    def add(cls, item: Any) -> None:
        pass

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


def _placeholder() -> Any:
    return _Meta("Placeholder", (), {"__new__": staticmethod(lambda c, *a, **k: _placeholder())})


_REAL_NAMES = {("__builtin__", "set"), ("builtins", "set")}
"""Harmless classes the oracle hands out for real (the static machine models them as they are)."""


class InertUnpickler(pickle.Unpickler):
    """CPython's C unpickler with find_class replaced: records (module, name), imports nothing."""

    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self.requested: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        self.requested.append(f"{module}.{name}")
        if (module, name) in _REAL_NAMES and (module == "builtins" or self._maps_python2_names()):
            # the real class (a set has no __dict__ for BUILD and no append, whatever a stand-in would
            # accept); ``__builtin__`` is only renamed below protocol 3, else it is a module to import, which
            # ckptlint does not model (the loading process may have one)
            return set
        return _placeholder()

    def _maps_python2_names(self) -> bool:
        """Whether CPython's find_class renames Python 2 names here (protocol < 3; ``copyreg`` is loaded)."""
        try:
            pickle.Unpickler.find_class(self, "copy_reg", "_reconstructor")
        except ImportError:
            return False
        return True


class _WholePeek(io.BytesIO):
    """A file whose ``peek`` shows everything left: the C unpickler then holds the whole stream in
    its buffer and reads it contiguously, exactly as ``pickle.loads`` does (which takes no subclass)."""

    def peek(self, n: int = 0) -> bytes:
        return self.getvalue()[self.tell():]


def _load(f: Any) -> tuple[list[str], bool | None]:
    """None for a MemoryError: whether CPython gets past a memo index sized in gigabytes depends on
    the machine; ckptlint reads on (it reports more, never less)."""
    up = InertUnpickler(f)
    try:
        up.load()
        return up.requested, True
    except MemoryError:
        return up.requested, None
    except Exception:  # noqa: BLE001 - any exception is "CPython raises here"
        return up.requested, False


def oracles(datas: list[bytes], tmp: Path) -> list[dict[str, tuple[list[str], bool | None]]]:
    """:func:`oracle` for many streams in one subprocess whose address space is capped at 2 GiB:
    a mutated memo index makes CPython size its memo array to tens of GB, a mutated length makes
    it allocate the length up front; under the cap those are MemoryErrors ("CPython raises")."""
    script = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_pickle_vs_cpython as t\n"
        "from pathlib import Path\n"
        "out = [t.oracle(bytes.fromhex(h), Path(sys.argv[1])) for h in json.load(sys.stdin)]\n"
        "json.dump(out, sys.stdout)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp)], input=json.dumps([d.hex() for d in datas]),
                          capture_output=True, text=True, timeout=600, check=True)
    return [{k: (list(v[0]), v[1]) for k, v in r.items()} for r in json.loads(proc.stdout)]


def oracle(data: bytes, tmp: Path) -> dict[str, tuple[list[str], bool | None]]:
    """(globals requested, loaded without error) by CPython's C unpickler reading the stream as
    ``pickle.loads`` does (``loads``), as ``pickle.load`` reads a file (``file``) and as torch.load
    reads a zip member, from an ``io.BytesIO`` without ``peek`` (``bytesio``)."""
    p = tmp / "oracle.bin"
    p.write_bytes(data)
    with open(p, "rb") as f:
        from_file = _load(f)
    out = {"loads": _load(_WholePeek(data)), "bytesio": _load(io.BytesIO(data)), "file": from_file}
    if len(data) < 4096 and None not in (out["file"][1], out["loads"][1]):
        # the file's buffer holds it all: pickle.load reads it like pickle.loads (a huge length is a
        # MemoryError for one and "truncated" for the other)
        assert out["file"] == out["loads"], "pickle.load and pickle.loads disagree"
    return out


def ours(data: bytes, tmp: Path, container: str) -> tuple[list[str], bool]:
    """(globals ckptlint reports in the stream the loader reads, read without a stop): as a raw
    pickle file (``pickle.load``) or as a torch zip's data.pkl (``torch.load``, via io.BytesIO)."""
    p = tmp / ("case.pkl" if container == "raw" else "case.pt")
    if container == "raw":
        p.write_bytes(data)
        stream = "pickle#0"
    else:
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/byteorder", "little")
            z.writestr("archive/version", "3\n")
        stream = "archive/data.pkl"
    try:
        inv = ckptlint.inspect(p)
    except CheckpointError:
        return [], False
    refs = [g.written or g.qualname for g in inv.globals if g.stream == stream]
    return refs, not any(s.stream == stream for s in inv.stops)


SEEDS = range(600)


def _compare(want: tuple[list[str], bool | None], got: tuple[list[str], bool]) -> str | None:
    (wg, ok), (gg, read) = want, got
    if ok is None:
        return None if gg[:len(wg)] == wg else "CPython ran out of memory"
    if ok and (gg != wg or not read):
        return "CPython loads it"
    if not ok and (gg[:len(wg)] != wg or read):
        return "CPython raises"
    return None


@pytest.mark.parametrize("chunk", range(6))
def test_globals_match_cpythons_c_unpickler(tmp_path: Path, chunk: int) -> None:
    failures = []
    outcomes = {True: 0, False: 0}
    seeds = list(SEEDS[chunk::6])
    datas = [case(seed) for seed in seeds]
    for seed, data, want in zip(seeds, datas, oracles(datas, tmp_path), strict=True):
        outcomes[bool(want["loads"][1])] += 1
        for mode, container in (("loads", "raw"), ("bytesio", "zip")):
            got = ours(data, tmp_path, container)
            why = _compare(want[mode], got)
            if why:
                failures.append((seed, mode, why, want[mode], got))
    assert not failures, failures[:5]
    assert outcomes[True] > 20 and outcomes[False] > 5  # both outcomes are exercised


def test_readers_that_split_frames_differently_are_both_reported(tmp_path: Path) -> None:
    # The frame ends inside BINUNICODE's 4-byte length. pickle.loads reads on: length 16, and the
    # string swallows the payload. torch.load (io.BytesIO) drops the frame's last two bytes and reads
    # the length after the frame: 0, so the payload right after it runs.
    after = b"\x00\x00\x00\x00" + b"cos\nsystem\n)R0" + b"0N."
    data = b"\x80\x04\x95" + struct.pack("<Q", 3) + b"X\x10\x00" + after
    want = oracle(data, tmp_path)
    assert want["loads"] == ([], True) and want["bytesio"] == (["os.system"], True)
    for mode, container in (("loads", "raw"), ("bytesio", "zip")):
        assert _compare(want[mode], ours(data, tmp_path, container)) is None
    inv = ckptlint.inspect(tmp_path / "case.pt")
    assert any("read different pickles" in a for a in inv.anomalies)
    raw = ckptlint.inspect(tmp_path / "case.pkl")
    assert any("read different pickles" in a for a in raw.anomalies)
    assert [(g.qualname, g.stream) for g in raw.globals] == [("os.system", "pickle#0#file")]


def test_generator_covers_every_opcode() -> None:
    seen: set[str] = set()
    for seed in SEEDS:
        data = case(seed)
        for op in data:
            name = _NAMES.get(op)
            if name:
                seen.add(name)
    missing = {op.name for op in pickletools.opcodes} - seen - {"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
                                                                "NEXT_BUFFER", "READONLY_BUFFER"}
    assert not missing


_NAMES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}


def test_persistent_ids_and_buffers_stop_like_cpython(tmp_path: Path) -> None:
    # pickle.load has no persistent_load and no buffers: CPython raises at these, after the global
    for tail in (b"Pid\n", b"N\x51", b"\x97", b"N\x98"):
        data = b"\x80\x05cm0\nf0\n)R0" + tail + b"."
        want, ok = oracle(data, tmp_path)["loads"]
        got, read = ours(data, tmp_path, "raw")
        assert not ok and want == ["m0.f0"]
        assert got == want and not read
