"""The weights_only verdict walks the structure for model classes only when a global's category needs them.

A state_dict's globals (OrderedDict, the rebuild function, storage types) are all allowed, so its check never
walks its structure (two nodes per tensor) for ``nn.Module``-like states; a pickled module's class is asked about.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ckptlint.checker import check_file
from ckptlint.safety import weights_only
from ckptlint.safety.classify import ModelClasses, module_classes


def test_model_classes_are_the_walks_answer_computed_when_asked() -> None:
    structure = {"net": {"__object__": "mymod.Net", "state": {"_modules": {}, "training": True}},
                 "w": {"__tensor__": 0}, "other": {"__object__": "mymod.Plain", "state": {"x": 1}}}
    lazy = ModelClasses(structure)
    assert lazy.names is None
    assert "mymod.Net" in lazy and "mymod.Plain" not in lazy
    assert lazy.names == module_classes(structure) == frozenset({"mymod.Net"})


def test_a_state_dict_check_does_not_walk_for_model_classes(torch: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ModelClasses] = []

    class Kept(ModelClasses):  # the real class; its instances are kept to see whether they walked
        def __init__(self, structure: Any) -> None:
            super().__init__(structure)
            made.append(self)

    monkeypatch.setattr(weights_only, "ModelClasses", Kept)
    sd, whole = tmp_path / "sd.pt", tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), sd)
    torch.save(torch.nn.Linear(3, 2), whole)
    report = check_file(sd)
    assert report.verdict is not None and report.verdict.loads and len(made) == 1 and made[0].names is None
    report = check_file(whole)
    assert report.verdict is not None and not report.verdict.loads
    assert len(made) == 2 and made[1].names is not None  # Linear is neither allowed nor data: classify asked
