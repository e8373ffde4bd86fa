"""Issue #11: the readers and the safety analysis stay small enough to review as torch's code is
reviewed, line by line: no module in ``formats/`` or ``safety/`` reaches 500 lines."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptlint

PACKAGE = Path(ckptlint.__file__).parent
LIMIT = 500


@pytest.mark.parametrize("folder", ["formats", "safety"])
def test_no_module_reaches_500_lines(folder: str) -> None:
    modules = sorted((PACKAGE / folder).glob("*.py"))
    assert len(modules) > 3, modules  # the folder is where this test thinks it is
    sizes = {m.name: len(m.read_text(encoding="utf-8").splitlines()) for m in modules}
    assert {name: n for name, n in sizes.items() if n >= LIMIT} == {}
