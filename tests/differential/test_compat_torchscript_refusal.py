"""A TorchScript archive whose load-time code touches files gets no ``torch.jit.load`` snippet.

torch.jit.load compiles the archive's code and runs ``__setstate__`` at load (CK108); loading code for such
an archive would run the payload, so the snippet is only the reason and a SystemExit. A plain scripted module
keeps its ``torch.jit.load`` snippet (tests/differential/test_training_libs_vs_torch.py runs those)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from test_torchscript_vs_torch import _BUILDER

import ckptlint
from ckptlint.compat.analyze import analyze
from ckptlint.targets.resolve import live_signature

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script/save are deprecated


def _fix_snippet(path: Path) -> str:
    sig, model = live_signature("torch.nn:Linear", {"in_features": 2, "out_features": 2})
    rep = analyze(ckptlint.inspect(str(path)), sig, model=model)
    assert rep.fix is not None, rep.result  # checkpoint keys lin.* against Linear's own: a prefix fix
    return rep.fix.snippet


def test_hostile_archive_gets_no_loading_code(tmp_path: Path) -> None:
    from conftest import python_process

    marker = tmp_path / "marker"  # what the archive's __setstate__ writes (torch.save) when it is loaded
    archive = tmp_path / "hostile.pt"
    (tmp_path / "builder.py").write_text(_BUILDER)  # TorchScript compiles from the source file
    built = python_process(tmp_path / "builder.py", str(marker), str(archive), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    snippet = _fix_snippet(archive)
    assert "torch.jit.load(" not in snippet and "raise SystemExit" in snippet and "aten::save" in snippet
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    ran = python_process(str(script), cwd=tmp_path)
    assert ran.returncode == 1 and "not loading" in ran.stderr
    assert not marker.exists()


def test_plain_scripted_module_keeps_its_loader(tmp_path: Path) -> None:
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(Holder()), str(path))
    snippet = _fix_snippet(path)
    assert "torch.jit.load(" in snippet and "SystemExit" not in snippet
