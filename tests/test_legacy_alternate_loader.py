"""A FRAME in sys_info that runs past its STOP: the main pickle has two possible starts (fuzz seed 1 index 87057).

Both starts are read (which one torch takes depends on its file buffer), and both through torch's legacy
``persistent_load``: its ``storage_type.dtype`` raises AttributeError for ``torch.storage.UntypedStorage``, so
neither reading reaches a global after that storage (the other start used to read on past it)."""

from __future__ import annotations

import struct
from pathlib import Path

from ckptlint.checker import check_file

MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
VERSION = b"\x80\x02M\xe9\x03."


def _sys_info_with_long_frame(extra: bytes) -> bytes:
    body = b"}." + extra  # the frame holds the dict, STOP, and ``extra`` past STOP
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


def _main() -> bytes:
    return (b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(("
            b"X\x07\x00\x00\x00storagectorch.storage\nUntypedStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04NtQ"
            b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR"
            b"X\x01\x00\x00\x00dcdatetime\ndate\n)Ru.")


def test_both_starts_stop_at_an_untyped_storage(tmp_path: Path) -> None:
    p = tmp_path / "frame.pt"
    p.write_bytes(MAGIC + VERSION + _sys_info_with_long_frame(b"N0") + _main() + b"\x80\x02]X\x01\x00\x00\x000a.")
    fr = check_file(p)
    inv = fr.inventory
    assert inv is not None
    alternates = [s for s in inv.facts.loaded_streams if s.startswith("pickle#3@")]
    assert alternates  # the frame's other end was read as a second start of the main pickle
    loaded = set(inv.facts.loaded_streams)
    reached = {(g.qualname, g.stream) for g in inv.globals if g.stream in loaded}
    assert ("torch.storage.UntypedStorage", alternates[0]) in reached
    # the globals after the storage were reached through pickle#3@<frame end>
    assert not {q for q, _ in reached} & {"collections.OrderedDict", "datetime.date"}
    assert fr.verdict is not None and fr.verdict.loads is False
