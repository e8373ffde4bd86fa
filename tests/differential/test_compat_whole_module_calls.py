"""A whole-module pickle gets allowlisting code only when torch would merely rebuild its classes.

torch's weights_only REDUCE calls any allowlisted global: a file that *calls* a model class (or uses
copyreg._reconstructor, which runs ``base.__init__``) would run that class's constructor with the file's
arguments once the snippet allowlisted it, so such a file gets no loading code."""

from __future__ import annotations

from pathlib import Path

import torch

import ckptlint
from ckptlint.compat.snippet import predicted_verdict, whole_module

import compat_models as cm


class _CallsTheClass:
    """Pickles as ``compat_models.ModelA()``: a REDUCE of the class itself."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (cm.ModelA, ())


def test_a_rebuilt_module_gets_its_classes(tmp_path: Path) -> None:
    torch.save(cm.ModelA(), tmp_path / "m.pt")
    inv = ckptlint.inspect(tmp_path / "m.pt")
    held = whole_module(inv, predicted_verdict(inv))
    assert ("compat_models", "ModelA") in held.classes and held.refusal == ""


def test_a_file_that_calls_a_model_class_gets_no_loading_code(tmp_path: Path) -> None:
    torch.save({"model": cm.ModelA(), "extra": _CallsTheClass()}, tmp_path / "m.pt")
    inv = ckptlint.inspect(tmp_path / "m.pt")
    held = whole_module(inv, predicted_verdict(inv))
    assert held.classes == ()
    assert "compat_models.ModelA" in held.refusal and "constructor" in held.refusal
