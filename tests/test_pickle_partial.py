"""A file the readers give up on is reported from what its streams named (formats._partial); the
streams it calls loaded are only those pickle.load / torch.load(weights_only=False) run: a
``#weights_only`` reading past a PROTO CPython refuses is not one of them."""

from __future__ import annotations

from pathlib import Path

import ckptlint


def test_weights_only_reading_is_not_loaded(tmp_path: Path) -> None:
    # fuzz seed 105 index 344: CPython raises at PROTO 6 (byte 10) before any global; torch's
    # weights_only unpickler reads on and meets xsys.run
    p = tmp_path / "proto6.pkl"
    p.write_bytes(b"\x88G\x00\x00\x00\x00N}\x86b\x80\x06(\x8c\x07storage\x8c\x04xsys\x94\x8c\x03run\x93\x8c\x010")
    inv = ckptlint.inspect(p)
    assert "pickle#0#weights_only" in inv.facts.streams
    assert "pickle#0#weights_only" not in inv.facts.loaded_streams
    assert {(g.qualname, g.stream) for g in inv.globals} == {("xsys.run", "pickle#0#weights_only")}
