"""torch's legacy reader compares the first pickle's value with the magic number (``!=``). When that
value is an object a call built, the reader records which callable built it
(``facts.extra["magic_compared_with"]``); for a plain data class (DCP's Metadata dataclass: no
``__eq__`` of its own against an int) the comparison is decided, so no reader-disagreement finding."""

from __future__ import annotations

from pathlib import Path

import ckptlint
from ckptlint.checker import check_file

_META = b"ctorch.distributed.checkpoint.metadata\nMetadata\n"


def test_a_dataclass_compared_with_the_magic_is_named(tmp_path: Path) -> None:
    # NEWOBJ of the class with no args, then BUILD with a state dict: how pickle writes a dataclass
    p = tmp_path / ".metadata"
    p.write_bytes(b"\x80\x02" + _META + b")\x81}X\x13\x00\x00\x00state_dict_metadata}sb.")
    inv = ckptlint.inspect(p)
    assert inv.facts.extra["magic_compared_with"] == ["torch.distributed.checkpoint.metadata.Metadata"]
    fr = check_file(p)
    assert "CK107" not in {f.code for f in fr.findings}


def test_an_unknown_class_stays_undecided(tmp_path: Path) -> None:
    p = tmp_path / "odd.pt"
    p.write_bytes(b"\x80\x02cmypkg\nThing\n)\x81.")
    inv = ckptlint.inspect(p)
    assert inv.facts.extra["magic_compared_with"] == ["mypkg.Thing"]
    assert any("whether it passes is known only by running it" in a for a in inv.anomalies)
    assert "CK107" in {f.code for f in check_file(p).findings}


def test_a_known_global_as_the_magic_number_is_decided(tmp_path: Path) -> None:
    """fuzz seed 2 index 56280: the first pickle's value is the class ``ValueError`` (``exceptions.ValueError``
    below protocol 3). A builtin class is never the magic number: torch raises "Invalid magic number" before the
    next pickle, so the ``os.system`` after it is a stream torch never loads (a raw pickle with trailing bytes)."""
    p = tmp_path / "magic.pt"
    p.write_bytes(b"\x8f0cexceptions\nValueError\n.\x80\x02cos\nsystem\n.")
    inv = ckptlint.inspect(p)
    assert inv.format == "pickle"  # was torch-legacy, reading on into pickle#1 as torch.load's
    assert inv.facts.loaded_streams == ("pickle#0",)
    assert [g.stream for g in inv.globals if g.qualname in ("os.system", "posix.system")] == ["pickle#1"]


def test_an_unknown_global_as_the_magic_number_stays_undecided(tmp_path: Path) -> None:
    p = tmp_path / "magic.pt"
    p.write_bytes(b"cmypkg\nMAGIC\n.\x80\x02M\xe9\x03.")
    inv = ckptlint.inspect(p)
    assert inv.format == "torch-legacy" and "pickle#1" in inv.facts.loaded_streams
