"""``check(records=False)`` (what the command line asks for its built-in formats, so -j workers send less):
every built-in format renders the same report with and without the tensor, storage, structure, metadata
and pickle-level records.

Checked on torch.save files (a state_dict, a training dictionary, a legacy file), the
crafted CLI files (clean safetensors, a CK101 pickle, an unreadable file), serially
and with two processes: a renderer that starts reading tensors makes this test fail.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from _cli_files import write_files
from ckptlint import check
from ckptlint.plugin.manager import all_rules, reporters


@pytest.fixture(scope="module")
def files(module_tmp: Path, torch: ModuleType) -> list[str]:
    made = write_files(module_tmp / "cli")
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    torch.save(lin.state_dict(), module_tmp / "sd.pt")
    torch.save({"model": lin.state_dict(), "epoch": 3, "opt": torch.optim.SGD(lin.parameters(), lr=0.1).state_dict()},
               module_tmp / "train.pt")
    torch.save({"w": torch.arange(4.0)}, module_tmp / "legacy.pt", _use_new_zipfile_serialization=False)
    return [str(made["clean"]), str(made["evil"]), str(made["unreadable"]),
            *(str(module_tmp / n) for n in ("sd.pt", "train.pt", "legacy.pt"))]


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_builtin_format_renders_the_same_without_records(files: list[str], jobs: int) -> None:
    full = check(files, jobs=jobs)
    lean = check(files, jobs=jobs, records=False)
    assert any(fr.inventory is not None and fr.inventory.tensors for fr in full.files)  # there was something to drop
    assert any(fr.inventory is not None and fr.inventory.pickles and fr.inventory.metadata for fr in full.files)
    assert all(fr.inventory is None or not (fr.inventory.tensors or fr.inventory.storages or fr.inventory.metadata
                                            or fr.inventory.pickles or fr.inventory.operations) for fr in lean.files)
    assert [(fr.inventory.globals, fr.inventory.facts, fr.inventory.notes) for fr in lean.files if fr.inventory] \
        == [(fr.inventory.globals, fr.inventory.facts, fr.inventory.notes) for fr in full.files if fr.inventory]
    assert [fr.findings for fr in lean.files] == [fr.findings for fr in full.files]
    options = {"rules": all_rules(), "color": False, "quiet": 0}
    builtin = {name: r for name, r in reporters().items() if r.__module__.startswith("ckptlint.report.")}
    assert {"text", "json", "sarif", "github", "markdown", "concise"} <= set(builtin)
    for name, render in builtin.items():
        assert render(lean, options) == render(full, options), name
