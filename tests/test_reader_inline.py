"""The opcode loop's inline cases (formats/pickleloop.py) do exactly what the machine's handlers do.

The loop runs the opcodes torch.save emits on local variables, keeps the memo as a list while the
stream writes each next index, and builds a few calls (``_rebuild_tensor_v2``, ``OrderedDict()``, a
global whose call is only a record) directly. The handlers (``op_*``) with a dict memo are the
definition: every input here is read both ways, and everything the reading records must be equal
(the whole inventory: tensors, structure, globals, operations, first offsets, stops, notes).

Inputs: streams shaped like torch.save's, crafted streams aimed at the edges of each inline case (a
frame end inside an opcode, a sparse memo, the memo bounds, empty stacks, odd rebuild arguments, a
global whose name splits another way), the fuzzer's pickle family, each under the default limits and
under tiny ones; with torch, the files torch.save writes and the fuzzer's zip, legacy and tar families.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ckptlint
from ckptlint.errors import CkptlintError
from ckptlint.formats import pickleloop
from ckptlint.formats.unpickler import StaticUnpickler, Storage
from ckptlint.limits import Limits
from fuzz.generate import generate
from fuzz.zipbuild import Member, build

TINY = Limits(max_opcodes=60, max_memo=4, max_memo_index=6, max_depth=3, max_hash_nodes=40)


@contextmanager
def handlers_only() -> Iterator[None]:
    """The reference reading: no inline case, the memo a dict from the first opcode."""
    saved_inline, saved_load = pickleloop.INLINE, StaticUnpickler.load

    def load(self: StaticUnpickler) -> Any:
        self._memo = {}
        return saved_load(self)

    pickleloop.INLINE = frozenset()
    StaticUnpickler.load = load  # type: ignore[method-assign]
    try:
        yield
    finally:
        pickleloop.INLINE = saved_inline
        StaticUnpickler.load = saved_load  # type: ignore[method-assign]


def _reading(path: Path, limits: Limits) -> str:
    try:
        return repr(ckptlint.inspect(path, limits=limits))
    except CkptlintError as e:
        return f"unreadable: {e}"


def _assert_same(paths: list[Path]) -> int:
    """Both readings of every path under both limits must be equal; returns how many readings were compared."""
    fast = {(p, lim): _reading(p, lim) for p in paths for lim in (Limits(), TINY)}
    with handlers_only():
        slow = {(p, lim): _reading(p, lim) for p in paths for lim in (Limits(), TINY)}
    differ = [str(p) for (p, lim), text in fast.items() if slow[(p, lim)] != text]
    assert differ == [], differ
    return len(fast)


# ---- streams ---------------------------------------------------------------------


def _u(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _put(i: int) -> bytes:
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def torch_like(n: int, *, dtype: bytes = b"FloatStorage", grad: bytes = b"\x89", numel: int = 16,
               size: bytes = b"K\x04K\x04\x86", stride: bytes = b"K\x04K\x01\x86") -> bytes:
    """The protocol-2 stream torch.save writes for a state_dict of ``n`` tensors (as pickletools shows it)."""
    out = [b"\x80\x02}q\x00(", _u("t0"), _put(1), b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((", _u("storage"),
           _put(3), b"ctorch\n" + dtype + b"\nq\x04", _u("0"), _put(5), _u("cpu"), _put(6), b"K" + bytes([numel]),
           b"tq\x07QK\x00", size, b"q\x08", stride, b"q\x09", grad,
           b"ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0d"]
    memo = 14
    for i in range(1, n):
        out += [_u(f"t{i}"), _put(memo), b"h\x02((h\x03h\x04", _u(str(i)), _put(memo + 1),
                b"h\x06K" + bytes([numel]) + b"t", _put(memo + 2), b"QK\x00", size, _put(memo + 3), stride,
                _put(memo + 4), grad, b"h\x0a)R", _put(memo + 5), b"t", _put(memo + 6), b"R", _put(memo + 7)]
        memo += 8
    out.append(b"u.")
    return b"".join(out)


def zipped(pkl: bytes, records: dict[str, int]) -> bytes:
    members = [Member(b"archive/data.pkl", pkl), Member(b"archive/byteorder", b"little")]
    members += [Member(f"archive/data/{k}".encode(), bytes(n)) for k, n in records.items()]
    return build([*members, Member(b"archive/version", b"3\n")])


_G = b"cos\nsystem\n"
_RT2 = b"ctorch._utils\n_rebuild_tensor_v2\n"
_PID = b"(" + _u("storage") + b"ctorch\nFloatStorage\n" + _u("0") + _u("cpu") + b"K\x04tQ"
_PID_INT = b"(" + _u("storage") + b"ctorch\nIntStorage\n" + _u("0") + _u("cpu") + b"K\x04tQ"
_HOOKS = b"ccollections\nOrderedDict\n)R"


def _tensor(args: bytes, func: bytes = _RT2, pid: bytes = _PID) -> bytes:
    return b"\x80\x02" + func + b"(" + pid + args + b"tR."


CRAFTED: dict[str, bytes] = {
    # frames: an inline read must not cross a FRAME's end (the handler records the straddle)
    "frame ends inside BINUNICODE": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00X\x03\x00\x00\x00abc\x94.",
    "frame ends inside LONG_BINPUT": b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01r\x00\x00\x00\x00.",
    "frame ends inside BININT1": b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00NK\x05\x86.",
    "frame inside a frame": b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00K\x01"
                            b"\x95\x02\x00\x00\x00\x00\x00\x00\x00K\x02\x86\x94.",
    "frame past the end": b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00K\x01.",
    # the memo: dense, sparse, overwritten, missing, bounded
    "sparse memo index": b"\x80\x02K\x01q\x05h\x05\x86.",
    "memo overwritten": b"\x80\x02K\x01q\x00K\x02q\x00h\x00\x86.",
    "memo dense then sparse then dense": b"\x80\x02K\x01q\x00K\x02q\x02K\x03q\x01h\x02h\x01\x87.",
    "memo key missing": b"\x80\x02K\x01q\x00h\x01.",
    "long memo key missing": b"\x80\x02K\x01q\x00j\x01\x00\x00\x00.",
    "put on an empty stack": b"\x80\x02q\x00.",
    "memoize after a sparse put": b"\x80\x04K\x01q\x03\x94h\x01\x86.",
    "memoize on an empty stack": b"\x80\x04\x94.",
    "many dense puts": b"\x80\x02" + b"".join(b"K\x01" + _put(i) for i in range(300)) + b"j\x2b\x01\x00\x00.",
    "memo index past 2**24": b"\x80\x02K\x01r\x00\x00\x00\x02h\x00.",
    "text put and get": b"(K\x01p0\ng0\nt.",
    # stacks and marks
    "pop on an empty stack pops the mark": b"\x80\x02(0N.",
    "pop without anything": b"\x80\x020N.",
    "dup on an empty stack": b"\x80\x022.",
    "tuple without a mark": b"\x80\x02K\x01t.",
    "tuple2 of one": b"\x80\x02K\x01\x86.",
    "tuple3 of two": b"\x80\x02K\x01K\x02\x87.",
    "marks past max_depth": b"\x80\x02" + b"(" * 8 + b"t" * 8 + b".",
    "appends to a list": b"\x80\x02](K\x01K\x02e.",
    "appends nothing to None": b"\x80\x02N(e.",
    "appends to None": b"\x80\x02N(K\x01e.",
    "appends to an empty stack": b"\x80\x02(K\x01e.",
    "append to a tuple": b"\x80\x02)K\x01a.",
    "append to a list": b"\x80\x02]K\x01aK\x02a.",
    "strings": b"\x80\x04" + _u("a\udcff") + b"\x8c\x02\xc3\xa9\x86.",
    "bad utf-8": b"\x80\x02X\x01\x00\x00\x00\xff.",
    "short binunicode truncated": b"\x80\x04\x8c\x09ab",
    "numbers": b"\x80\x02(J\xff\xff\xff\xffM\x01\x02G?\xf8\x00\x00\x00\x00\x00\x00K\x07N\x88\x89}]t.",
    "truncated inside BININT": b"\x80\x02J\x01\x02",
    "ends without STOP": b"\x80\x02K\x01",
    "invalid opcode": b"\x80\x02K\x01\xff.",
    # calls: the inline ones and their neighbours
    "rebuild_tensor_v2": _tensor(b"K\x00K\x02K\x02\x86K\x02K\x01\x86\x89" + _HOOKS),
    "rebuild_tensor_v2 split as torch + _utils._rebuild_tensor_v2": _tensor(
        b"K\x00K\x04\x85K\x01\x85\x89" + _HOOKS, func=b"ctorch\n_utils._rebuild_tensor_v2\n"),
    "rebuild_tensor_v2 of an int tensor requiring grad": _tensor(b"K\x00K\x04\x85K\x01\x85\x88" + _HOOKS, pid=_PID_INT),
    "rebuild_tensor_v2 requiring grad": _tensor(b"K\x00K\x04\x85K\x01\x85\x88" + _HOOKS),
    "rebuild_tensor_v2 with a negative stride": _tensor(b"K\x00K\x02\x85J\xff\xff\xff\xff\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 with a list size": _tensor(b"K\x00](K\x04eK\x01\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 with a bool in its size": _tensor(b"K\x00\x88\x85K\x01\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 with unequal size and stride": _tensor(b"K\x00K\x02K\x02\x86K\x01\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 past its record": _tensor(b"K\x03K\x04\x85K\x01\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 of an empty view past its record": _tensor(b"K\x09K\x00\x85K\x01\x85\x89" + _HOOKS),
    "rebuild_tensor_v2 with 5 arguments": _tensor(b"K\x00K\x04\x85K\x01\x85\x89"),
    "rebuild_tensor_v2 with a None stride": _tensor(b"K\x00K\x04\x85N\x89" + _HOOKS),
    "rebuild_tensor_v2 with a true requires_grad int": _tensor(b"K\x00K\x04\x85K\x01\x85K\x01" + _HOOKS),
    "rebuild_tensor_v2 of a string": b"\x80\x02" + _RT2 + b"(" + _u("x") + b"K\x00K\x04\x85K\x01\x85\x89" + _HOOKS
                                     + b"tR.",
    "OrderedDict with arguments": b"\x80\x02ccollections\nOrderedDict\n(]tR.",
    "OrderedDict(), filled and built": b"\x80\x02ccollections\nOrderedDict\n)R(" + _u("a") + b"K\x01u}b.",
    "Counter()": b"\x80\x02ccollections\nCounter\n)R.",
    "a plain global called": b"\x80\x02" + _G + b"q\x00h\x00" + _u("true") + b"\x85Rh\x00)R\x86.",
    "a plain global called on a global": b"\x80\x02" + _G + _G + b"R.",
    "a plain global called on a list": b"\x80\x02" + _G + b"]R.",
    "a plain global built": b"\x80\x02" + _G + b"}b" + _G + b"Nb" + _G + b"]b" + _G + b"K\x00b\x87.",
    "a plain global's record built and appended": b"\x80\x02" + _G + b")R(K\x01e}b.",
    "a global split another way built": b"\x80\x02ccollections.Ordered\nDict\n)R}b.",
    "builtins called and built": b"\x80\x02cbuiltins\nset\n)R}bcbuiltins\nobject\n)\x81}b.",
    "a function as a class": b"\x80\x02" + _RT2 + b")\x81.",
    "a plain class instantiated": b"\x80\x02cmymod\nThing\nq\x00h\x00)\x81h\x00)\x81\x86.",
    "a plain class on a global": b"\x80\x02cmymod\nThing\n" + _G + b"\x81.",
    "a dtype called": b"\x80\x02ctorch\nfloat32\n)R.",
    "a dtype called after a call": b"\x80\x02" + _G + b")R0ctorch\nfloat32\n)R.",
    "a loader called": b"\x80\x02cpickle\nloads\nC\x02N.\x85R.",
    "stack_global of memoized names": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93)Rh\x00h\x01\x93)R\x86.",
    # SETITEM: a str key into a plain dict is inline; any other key, target or stack is the handler's
    "setitem of str keys into a dict": b"\x80\x02}" + _u("a") + b"K\x01s" + _u("b") + b"}" + _u("v") + b"K\x01ss.",
    "setitem overwrites a key": b"\x80\x02}" + _u("a") + b"K\x01s" + _u("a") + b"K\x02s.",
    "setitem of a tuple key": b"\x80\x02}K\x01K\x02\x86K\x03s.",
    "setitem of an int key": b"\x80\x02}K\x01K\x03s.",
    "setitem of a list key": b"\x80\x02}]K\x03s.",
    "setitem into an OrderedDict": b"\x80\x02" + _HOOKS + _u("a") + b"K\x01s.",
    "setitem into a list": b"\x80\x02](K\x01eK\x00" + _u("a") + b"s.",
    "setitem into None": b"\x80\x02N" + _u("a") + b"K\x01s.",
    "setitem into a plain global": b"\x80\x02" + _G + _u("a") + b"K\x01s.",
    "setitem with two on the stack": b"\x80\x02" + _u("a") + b"K\x01s.",
    "setitem across a mark": b"\x80\x02}(" + _u("a") + b"K\x01s.",
    # persistent ids
    "storage pid": b"\x80\x02" + _PID + b".",
    "storage pid at an odd location": b"\x80\x02(" + _u("storage") + b"ctorch\nFloatStorage\n" + _u("0") + _u("weird")
                                      + b"K\x04tQ.",
    "the same key twice": b"\x80\x02" + _PID + b"(" + _u("storage") + b"ctorch\nFloatStorage\n" + _u("0") + _u("weird")
                          + b"K\x04tQ\x86.",
    "pid that is not a tuple": b"\x80\x02K\x01Q.",
    "pid of another tag": b"\x80\x02(" + _u("module") + b"K\x01tQ.",
    "pid tag as bytes": b"\x80\x02(C\x07storagectorch\nFloatStorage\n" + _u("0") + _u("cpu") + b"K\x04tQ.",
    "pid with an unknown storage type": b"\x80\x02(" + _u("storage") + b"ctorch\nNoStorage\n" + _u("0") + _u("cpu")
                                        + b"K\x04tQ.",
}


WARM_UP = (b"(K\x01J\x01\x00\x00\x00M\x01\x00G\x00\x00\x00\x00\x00\x00\x00\x00N\x88\x89)}]X\x01\x00\x00\x00a\x8c\x01b"
           b"K\x01\x85K\x01K\x02\x86K\x01K\x02K\x03\x87(K\x01tK\x0120]K\x01a](K\x01ecmymod\nW\n)Rcmymod\nW\n)\x81"
           b"cmymod\nW\n}bccollections\nOrderedDict\n)R}X\x01\x00\x00\x00kK\x01s1")
"""Every inline opcode but the memo's and BINPERSID, once, inside a MARK that POP_MARK drops: a stream after
it runs its opcodes inline from their first use (an opcode's first use always takes its handler)."""


def warmed(data: bytes) -> bytes:
    at = 2 if data.startswith(b"\x80") else 0
    return data[:at] + WARM_UP + data[at:]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("crafted")
    out = []
    streams = [*CRAFTED.values(), torch_like(3), torch_like(40), torch_like(2, dtype=b"IntStorage"),
               torch_like(2, grad=b"\x88"), torch_like(2, dtype=b"IntStorage", grad=b"\x88"), torch_like(2, numel=8)]
    for i, data in enumerate([*streams, *map(warmed, streams)]):
        raw, zip_ = d / f"{i}.pkl", d / f"{i}.pt"
        raw.write_bytes(data)
        zip_.write_bytes(zipped(data, {str(k): 64 for k in range(40)}))
        out += [raw, zip_]
    return out


def test_crafted_streams_read_the_same_inline_and_by_the_handlers(crafted: list[Path]) -> None:
    assert _assert_same(crafted) == 2 * len(crafted)


def test_the_fuzzers_pickles_read_the_same_inline_and_by_the_handlers(tmp_path: Path) -> None:
    paths = []
    for i in range(150):
        data, _, _ = generate(14, i, families=["pickle"])
        paths.append(tmp_path / f"{i}.pkl")
        paths[-1].write_bytes(data)
    assert _assert_same(paths) == 300


def test_the_comparison_sees_a_wrong_inline_case(crafted: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The two readings can differ: an inline REDUCE that took a dtype (not callable) for a plain global is seen."""
    paths = [p for p in crafted if p.suffix == ".pkl"]
    real: Callable[[str, str], bool] = pickleloop.plain_global
    monkeypatch.setattr(pickleloop, "plain_global", lambda module, name: real(module, name) or name == "float32")
    with pytest.raises(AssertionError):
        _assert_same(paths)


def test_the_memo_is_a_list_while_indices_are_dense() -> None:
    up = StaticUnpickler(torch_like(40), "s", persistent_load=lambda pid: Storage(pid[2], "float32", 64, "cpu", True))
    up.load()
    assert type(up._memo) is list and len(up._memo) == 14 + 8 * 39
    sparse = StaticUnpickler(CRAFTED["memo dense then sparse then dense"], "s")
    sparse.load()
    assert sparse._memo == {0: 1, 2: 2, 1: 3}


@pytest.mark.parametrize(("limits", "bound"), [(Limits(max_memo=5), "max_memo"),
                                                (Limits(max_memo_index=4), "max_memo_index")])
def test_the_list_memo_keeps_the_memo_bounds(limits: Limits, bound: str) -> None:
    data = b"\x80\x02" + b"".join(b"K\x01" + _put(i) for i in range(6)) + b"."
    up = StaticUnpickler(data, "s", limits=limits)
    with pytest.raises(CkptlintError) as e:
        up.load()
    assert getattr(e.value, "field", None) == bound
    assert up.stop_offset == 2 + 4 * 5 + 2  # the sixth PUT: index 5 is the first past either bound


# ---- files torch writes --------------------------------------------------------------


def test_torch_files_read_the_same_inline_and_by_the_handlers(torch: ModuleType, tmp_path: Path) -> None:
    nn = torch.nn
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    base = torch.arange(40, dtype=torch.float32)
    objects = [
        model.state_dict(), model, {"model": model.state_dict(), "epoch": 3},
        {"a": base[2:10], "b": base.view(5, 8).t(), "tied": base, "p": nn.Parameter(torch.ones(3))},
        {"i": torch.arange(6).reshape(2, 3), "b": torch.ones(3, dtype=torch.bool),
         "g": torch.ones(2, requires_grad=True)},
        {f"layer{i}.weight": torch.ones(2) for i in range(300)},
    ]
    paths = []
    for obj in objects:
        for kw in ({"pickle_protocol": 2}, {"pickle_protocol": 4}, {"pickle_protocol": 5},
                   {"_use_new_zipfile_serialization": False}):
            paths.append(tmp_path / f"{len(paths)}.pt")
            torch.save(obj, paths[-1], **kw)
    for family in ("zip", "legacy", "tar"):
        for i in range(40):
            data, _, _ = generate(14, i, families=[family])
            paths.append(tmp_path / f"{len(paths)}.pt")
            paths[-1].write_bytes(data)
    assert _assert_same(paths) == 2 * len(paths)


@pytest.mark.parametrize("key", [_u("k"), b"K\x01K\x02\x86", b"K\x01"])
def test_the_inline_setitem_keeps_the_hash_bound(key: bytes) -> None:
    """An inline SETITEM charges what the handler charges (a str key one hash node, a tuple key each of its
    nodes): the bound stops the stream at the same SETITEM both ways."""
    data = warmed(b"\x80\x02}" + (key + b"K\x01s") * 5 + b".")
    stops = []
    for mode in ("inline", "handlers"):
        with handlers_only() if mode == "handlers" else nullcontext():
            up = StaticUnpickler(data, "s", limits=Limits(max_hash_nodes=3))
            with pytest.raises(CkptlintError) as e:
                up.load()
        stops.append((getattr(e.value, "field", None), up.stop_offset, up.budget.hashed))
    assert stops[0] == stops[1]
    assert stops[0][0] == "max_hash_nodes" and data[stops[0][1]] == ord("s")
    if key == _u("k"):  # the warm-up's SETITEM and two keys fill the bound; the third SETITEM is past it
        assert stops[0][1] == 2 + len(WARM_UP) + 1 + 3 * len(key + b"K\x01s") - 1
