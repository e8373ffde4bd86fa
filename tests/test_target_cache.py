"""Target signatures are cached: a repeat check needs no torch, and any source change rebuilds."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from conftest import python_process

WRAPPER = ("import json, sys, ckptlint.cli; rc = ckptlint.cli.main(sys.argv[1:]); "
           "print('TORCH', 'torch' in sys.modules, file=sys.stderr)")


def _check(tmp: Path, spec: str, ckpt: Path) -> tuple[dict[str, Any], bool]:
    """(compat JSON, whether torch was imported): a process, since "needs no torch" is about sys.modules."""
    proc = python_process("-c", WRAPPER, "check", "--format", "json", "--model", spec, ckpt, cwd=tmp,
                          pythonpath=[tmp], env={"CKPTLINT_CACHE_DIR": str(tmp / "cache"), "CKPTLINT_NO_CACHE": None})
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)["files"][0]["compat"], "TORCH True" in proc.stderr


MODEL = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear({n}, 2)
'''


def test_repeat_check_needs_no_torch_and_source_changes_invalidate(tmp_path: Path, torch: ModuleType) -> None:
    (tmp_path / "cached_model.py").write_text(MODEL.format(n=3))
    ckpt = tmp_path / "a.pt"
    torch.save({"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2)}, ckpt)
    first, imported = _check(tmp_path, "cached_model:Net", ckpt)
    assert imported and first["strict_ok"]
    assert len(list((tmp_path / "cache" / "targets").glob("*.json"))) == 1
    second, imported = _check(tmp_path, "cached_model:Net", ckpt)
    assert not imported and second == first
    (tmp_path / "cached_model.py").write_text(MODEL.format(n=4))  # the class changed
    third, imported = _check(tmp_path, "cached_model:Net", ckpt)
    assert imported
    assert third["shape_mismatch"] == {"fc.weight": [[2, 3], [2, 4]]}


def test_custom_load_logic_is_not_cached(tmp_path: Path, torch: ModuleType) -> None:
    (tmp_path / "hooked_model.py").write_text('''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        state_dict.pop(prefix + "legacy", None)
        super()._load_from_state_dict(state_dict, prefix, *args)
''')
    ckpt = tmp_path / "a.pt"
    torch.save({"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2), "legacy": torch.ones(1)}, ckpt)
    for _ in range(2):
        compat, imported = _check(tmp_path, "hooked_model:Net", ckpt)
        assert imported and compat["exact"] and compat["strict_ok"]  # torch's own hook ran both times
    assert not list((tmp_path / "cache" / "targets").glob("*.json"))
