"""The legacy main pickle (pickle#3) is read through torch's UnpicklerWrapper: a storage-type name
from any module is resolved by torch (``torch_resolves``); the other legacy pickles are plain
``pickle.load`` calls, where the same name is imported."""

from __future__ import annotations

from pathlib import Path

import ckptlint
import tarcraft as tc


def test_storage_names_in_the_main_pickle_only(tmp_path: Path) -> None:
    name = tc.glob("evil", "FloatStorage") + b"0"
    p = tmp_path / "legacy.pt"
    p.write_bytes(tc.legacy_file(obj_body=name + b"}", sys_info=tc.p2(name + b"}")))
    got = {(g.stream, g.torch_resolves) for g in ckptlint.inspect(p).globals if g.module == "evil"}
    assert got == {("pickle#3", True), ("pickle#2", False)}
