"""Tar and legacy walk-arounds, each built the way an attacker builds it.

For every file: ckptlint (static, in-process) must name ``os.system`` in the
stream torch runs it from; and a throwaway subprocess proves that the real
``torch.load(path, weights_only=False)`` reaches the payload, which only
touches a marker file in that subprocess's own temporary directory. One
subprocess loads the whole corpus (torch imports once).
"""

from __future__ import annotations

import json
import struct
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import tarcraft as tc
from ckptlint.errors import CheckpointError
from ckptlint.formats import read_inventory
from ckptlint.inventory import Inventory

pytestmark = pytest.mark.integration  # the proof runs torch in a subprocess (not a torch-free unit test)

Builder = Callable[[str], bytes]
"""marker name -> file bytes (the payload runs ``touch <marker>`` in the loader's working directory)."""


def _v7_payload_in_pickle(marker: str) -> bytes:
    t = tc.TorchTar(pickle_extra=tc.payload(marker))
    return tc.to_v7(tc.tar_bytes(t.members()))


def _payload_in_storages(marker: str) -> bytes:
    return tc.tar_bytes(tc.TorchTar(storage_extra=tc.payload(marker)).members())


def _payload_in_storage_count(marker: str) -> bytes:
    return tc.tar_bytes(tc.TorchTar(count_extra=tc.payload(marker)).members())


def _payload_in_tensors(marker: str) -> bytes:
    return tc.tar_bytes(tc.TorchTar(tensors_extra=tc.payload(marker)).members())


def _pax_sparse_pickle(marker: str) -> bytes:
    """The ``pickle`` member is PAX-sparse: a BINBYTES length swallows the 4 KiB hole, the payload follows.

    Read contiguously (no sparse map), the stored bytes put the payload inside the byte string."""
    t = tc.TorchTar()
    head = b"\x80\x02B" + struct.pack("<I", 4096 - 7)
    tail = tc.payload(marker) + b"0" + t.pickle()[2:]
    members = [(n, d) for n, d in t.members() if n != "pickle"]
    sparse = tc.pax_sparse_member("pickle", [(0, head), (4096, tail)], 4096 + len(tail))
    return tc.tar_bytes(members, end=False) + sparse + tc.end_blocks()


def _gnu_sparse_storages(marker: str) -> bytes:
    """``storages`` as an old-GNU sparse member: the payload lies after a hole of zeros."""
    t = tc.TorchTar(storage_extra=tc.payload(marker))
    data = t.storages()
    head = b"\x80\x02B" + struct.pack("<I", 1024 - 7)
    members = [(n, d) for n, d in t.members() if n != "storages"]
    # expanded: [head][zeros up to 1024][POP + the real storages stream without its PROTO]
    tail = b"0" + data[2:]
    return (tc.tar_bytes(members, end=False)
            + tc.gnu_old_sparse_member("storages", [(0, head), (1024, tail)], 1024 + len(tail)) + tc.end_blocks())


def _last_duplicate_wins(marker: str) -> bytes:
    benign = tc.TorchTar()
    evil = tc.TorchTar(pickle_extra=tc.payload(marker))
    return tc.tar_bytes([*benign.members(), ("pickle", evil.pickle())])


def _pax_path_renames(marker: str) -> bytes:
    """A member named ``notes.txt`` in its ustar header becomes ``pickle`` through a PAX ``path`` record."""
    t = tc.TorchTar()
    evil = tc.TorchTar(pickle_extra=tc.payload(marker)).pickle()
    members = [*t.members(), ("notes.txt", evil)]
    return tc.tar_bytes(members, fmt=tarfile.PAX_FORMAT, pax={"notes.txt": {"path": "pickle"}})


def _gnu_longname(marker: str) -> bytes:
    """A GNU longname record names the last member ``pickle``."""
    t = tc.TorchTar()
    evil = tc.TorchTar(pickle_extra=tc.payload(marker)).pickle()
    plain = tc.tar_bytes(t.members(), fmt=tarfile.GNU_FORMAT, end=False)
    long = tc.member_bytes("x" * 120, evil, tarfile.GNU_FORMAT)
    # the longname record's data holds the name: rewrite it (same length) to "pickle" + NULs
    at = long.index(b"x" * 120)
    long = long[:at] + b"pickle".ljust(120, b"\0") + long[at + 120:]
    return plain + long + tc.end_blocks()


def _hardlink_pickle(marker: str) -> bytes:
    """``pickle`` is a hard link to an earlier member that holds the payload."""
    t = tc.TorchTar()
    evil = tc.TorchTar(pickle_extra=tc.payload(marker)).pickle()
    members = [("readme", evil), *[(n, d) for n, d in t.members() if n != "pickle"]]
    return (tc.tar_bytes(members, end=False) + tc.member_bytes("pickle", b"", linkname="readme", type=tarfile.LNKTYPE)
            + tc.end_blocks())


def _bad_checksum_legacy(marker: str) -> bytes:
    """A legacy file whose first 512 bytes look like a ustar header (bad checksum): torch reads it as legacy."""
    pad = "u" * 300
    first = tc.p2(tc.uni(pad) + b"0" + tc.pint(tc.MAGIC))
    at = first.index(pad.encode())
    first = first[:257] + b"ustar" + first[262:] if at < 257 else first
    assert first[257:262] == b"ustar"
    return tc.legacy_file(obj_body=tc.payload(marker) + b"0}", magic=first)


def _tar_polyglot_fallback(marker: str) -> bytes:
    """A valid tar header whose name field is a protocol-0 pickle; the member's data runs past the end.

    tarfile.open succeeds, the member walk raises ReadError (a TarError), torch falls back to
    the legacy reader at byte 0 and unpickles the header itself."""
    name = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    assert len(name) < 100 and b"\0" not in name
    hdr = bytearray(512)
    hdr[0:len(name)] = name
    hdr[100:108] = b"0000644\0"
    hdr[108:124] = b"0000000\0" * 2
    hdr[124:136] = b"%011o\0" % 100000
    hdr[136:148] = b"00000000000\0"
    hdr[156:157] = b"0"
    hdr[257:265] = b"ustar\x0000"
    tc.set_checksum(hdr)
    return bytes(hdr) + b"\0" * 600


def _legacy_text_magic(marker: str) -> bytes:
    """Magic number as a protocol-0 LONG, protocol version as a protocol-0 INT: torch unpickles both."""
    return tc.legacy_file(obj_body=tc.payload(marker) + b"0}", magic=b"L%dL\n." % tc.MAGIC,
                          protocol=b"I1001\n.")


def _legacy_float_protocol(marker: str) -> bytes:
    """Protocol version 1001.0 (BINFLOAT): ``1001.0 != 1001`` is False, torch reads on."""
    return tc.legacy_file(obj_body=tc.payload(marker) + b"0}", protocol=tc.p2(b"G" + struct.pack(">d", 1001.0)))


def _legacy_bad_protocol_payload_first(marker: str) -> bytes:
    """The protocol pickle runs the payload, then yields 1002: torch raises only after running it."""
    return tc.legacy_file(protocol=tc.p2(tc.payload(marker) + b"0" + tc.pint(1002)))


def _framed(body: bytes, tail: bytes) -> bytes:
    """A protocol-4 pickle whose FRAME runs past its STOP over ``tail``."""
    inner = body + b"." + tail
    return b"\x80\x04\x95" + struct.pack("<Q", len(inner)) + inner


def _tar_frame_swallows(marker: str) -> bytes:
    """The storages count pickle's FRAME runs over a decoy: torch (no peek on the extracted file) skips it."""
    t = tc.TorchTar(storage_extra=tc.payload(marker))
    st = t.storages()
    decoy = tc.p2(tc.pint(0) + tc.uni("cpu") + tc.glob("decoy", "StorageClass") + b"\x87")
    st = _framed(tc.pint(1), decoy) + st[st.index(b".") + 1:]
    return tc.tar_bytes([(n, st if n == "storages" else d) for n, d in t.members()])


def _legacy_big_frame(marker: str) -> bytes:
    """The magic number's FRAME (20 kB) runs over a decoy protocol 1002; torch's buffered file skips the frame."""
    decoy = tc.p2(tc.pint(1002)) + b"\0" * 20000
    return tc.legacy_file(obj_body=tc.payload(marker) + b"0}", magic=_framed(tc.pint(tc.MAGIC), decoy))


def _pytorch1_name(marker: str) -> bytes:
    """A tar whose first member is named ``PYTORCH1``: torch tries tarfile on every non-zip file."""
    t = tc.TorchTar(pickle_extra=tc.payload(marker))
    return tc.member_bytes("PYTORCH1", b"") + tc.tar_bytes(t.members())


def _sparse_past_the_end(marker: str) -> bytes:
    """The pickle member's sparse map runs past the end of the file: tarfile raises ReadError only when
    torch's reader reaches that block, after the payload in the first 8 KiB ran; then torch falls back."""
    t = tc.TorchTar()
    first = tc.p2(tc.payload(marker) + b"0" + tc.uni("x" * 9000) + b"0}")[:-1]  # no STOP: needs the next block
    members = [(n, d) for n, d in t.members() if n != "pickle"]
    # GNU sparse 1.0: the map (one 30000-byte chunk) before the data; the header's size covers only what is there
    mapblock = b"1\n0\n30000\n".ljust(512, b"\0")
    sparse = tc.member_bytes("GNUSparseFile.0/pickle", mapblock + first, tarfile.PAX_FORMAT,
                             {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "pickle",
                              "GNU.sparse.realsize": "30000"})
    return tc.tar_bytes(members, end=False) + sparse + tc.end_blocks()


def _legacy_magic_with_a_utf8_string(marker: str) -> bytes:
    """The magic pickle holds a non-ASCII py2 string: pickle.load (ASCII) fails on it, torch.load (UTF-8)
    reads the magic number and goes on to the payload."""
    first = tc.p2(b"U\x02\xc3\xa9" + b"0" + tc.pint(tc.MAGIC))
    return tc.legacy_file(obj_body=tc.payload(marker) + b"0}", magic=first)


CASES: dict[str, tuple[Builder, str]] = {
    # name: (builder, the stream ckptlint must attribute os.system to; a trailing @ matches any offset)
    "v7_header": (_v7_payload_in_pickle, "pickle"),
    "storages_first": (_payload_in_storages, "storages#1"),
    "storage_count": (_payload_in_storage_count, "storages#0"),
    "tensors": (_payload_in_tensors, "tensors#1"),
    "pax_sparse": (_pax_sparse_pickle, "pickle"),
    "gnu_sparse": (_gnu_sparse_storages, "storages#1"),
    "last_duplicate": (_last_duplicate_wins, "pickle"),
    "pax_path": (_pax_path_renames, "pickle"),
    "gnu_longname": (_gnu_longname, "pickle"),
    "hardlink": (_hardlink_pickle, "pickle"),
    "bad_checksum_legacy": (_bad_checksum_legacy, "pickle#3"),
    "polyglot_fallback": (_tar_polyglot_fallback, "pickle#0"),
    "legacy_text_magic": (_legacy_text_magic, "pickle#3"),
    "legacy_float_protocol": (_legacy_float_protocol, "pickle#3"),
    "legacy_bad_protocol": (_legacy_bad_protocol_payload_first, "pickle#1"),
    "tar_frame_swallows": (_tar_frame_swallows, "storages#1"),
    "legacy_big_frame": (_legacy_big_frame, "pickle#3@"),
    "pytorch1_name": (_pytorch1_name, "pickle"),
    "sparse_past_the_end": (_sparse_past_the_end, "pickle"),
    "legacy_utf8_magic": (_legacy_magic_with_a_utf8_string, "pickle#3"),  # @: the stream read from the frame's end
}

PROOF = textwrap.dedent("""
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    import torch
    out = {}
    for name in sys.argv[1:]:
        try:
            torch.load(name + ".pt", weights_only=False)
            out[name] = "loaded"
        except BaseException as e:
            out[name] = type(e).__name__
        out[name + ":ran"] = os.path.exists(name + ".marker")
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tar_attacks")
    for name, (build, _) in CASES.items():
        (d / f"{name}.pt").write_bytes(build(f"{name}.marker"))
    return d


@pytest.fixture(scope="module")
def torch_reached(corpus: Path) -> dict[str, object]:
    """The real loader, in a throwaway subprocess whose working directory is the corpus folder."""
    from conftest import python_process

    proc = python_process("-c", PROOF, *CASES, cwd=corpus, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _inventory(path: Path) -> Inventory:
    try:
        return read_inventory(path)
    except CheckpointError as e:  # pragma: no cover - the failure message is the point
        pytest.fail(f"ckptlint says unreadable for a file torch reads: {e.reason}")


@pytest.mark.parametrize("name", list(CASES))
def test_ckptlint_names_the_payload_torch_reaches(name: str, corpus: Path, torch_reached: dict[str, object]) -> None:
    assert torch_reached[f"{name}:ran"] is True, f"torch.load did not reach the payload of {name}: {torch_reached}"
    inv = _inventory(corpus / f"{name}.pt")
    want = CASES[name][1]

    def match(stream: str) -> bool:
        return stream.startswith(want) if want.endswith("@") else stream == want

    hits = [g for g in inv.globals if g.qualname in ("os.system", "posix.system")]
    assert hits, f"{name}: ckptlint does not report os.system; globals {[g.qualname for g in inv.globals]}"
    assert any(match(g.stream) for g in hits), f"{name}: os.system reported in {[g.stream for g in hits]}"
    assert any(match(s) for s in inv.facts.loaded_streams), f"{name}: {want} not in {inv.facts.loaded_streams}"


def test_ckptlint_runs_none_of_them(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read statically from a working directory of its own: no payload leaves a marker there."""
    monkeypatch.chdir(tmp_path)
    for name in CASES:
        _inventory(corpus / f"{name}.pt")
    assert not list(tmp_path.iterdir())
