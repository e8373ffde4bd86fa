"""Compat exactness on the inputs issue #12 found (torch's ``load_state_dict`` is the oracle).

Empty state_dicts, meta tensors, a target's own load code raising (MNASNet without
``_metadata``), uninitialised (lazy) parameters, ``set_extra_state`` refusing the saved
value: ckptlint's missing / unexpected / shape / copy-error sets and strict / non-strict
verdicts must equal what torch does with a real CPU model, live and from a snapshot
(where the snapshot cannot know, it must say it is not exact).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _compat_oracle import Torch, agree, ckptlint_says, torch_says
from torch import nn

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import compat_models as cm  # noqa: E402 - after the path set-up

# -- the cases: (checkpoint object, target spec, target kwargs, fresh CPU model) --------------------


def _linear_sd() -> OrderedDict:
    torch.manual_seed(0)
    return nn.Linear(4, 3).state_dict()


def _meta(sd: OrderedDict, keys: tuple[str, ...] | None = None) -> OrderedDict:
    out = OrderedDict((k, v.to("meta") if keys is None or k in keys else v) for k, v in sd.items())
    out._metadata = sd._metadata  # type: ignore[attr-defined]
    return out


def _mnasnet_sd(metadata: bool) -> Any:
    from torchvision.models import mnasnet0_5

    sd = mnasnet0_5(num_classes=10).state_dict()
    return sd if metadata else dict(sd)


def _extra(version: int | None) -> OrderedDict:
    m = cm.WithExtraState()
    m.calls = 3
    sd = m.state_dict()
    if version is not None:
        sd["_extra_state"] = {"calls": 3, "version": version}
    return sd


def _lazy_from_full() -> OrderedDict:
    m = nn.Module()
    m.body, m.head = nn.Linear(4, 3), nn.Linear(3, 2)
    return m.state_dict()


LIN = {"in_features": 4, "out_features": 3}
MNAS = {"num_classes": 10}

CASES: dict[str, tuple[Callable[[], Any], str, dict[str, Any], Callable[[], nn.Module]]] = {
    "empty-into-params": (dict, "compat_models:ModelA", {}, cm.ModelA),
    "empty-ordereddict": (OrderedDict, "compat_models:ModelA", {}, cm.ModelA),
    "empty-nested": (lambda: {"state_dict": {}, "epoch": 3}, "compat_models:ModelA", {}, cm.ModelA),
    "empty-into-no-params": (dict, "torch.nn:Flatten", {}, nn.Flatten),
    "meta-all": (lambda: _meta(_linear_sd()), "torch.nn:Linear", LIN, lambda: nn.Linear(4, 3)),
    "meta-one": (lambda: _meta(_linear_sd(), ("bias",)), "torch.nn:Linear", LIN, lambda: nn.Linear(4, 3)),
    "meta-wrong-shape": (lambda: _meta(nn.Linear(5, 3).state_dict()), "torch.nn:Linear", LIN,
                         lambda: nn.Linear(4, 3)),
    "meta-unexpected": (lambda: OrderedDict([*_linear_sd().items(), ("ghost", torch.zeros(2, device="meta"))]),
                        "torch.nn:Linear", LIN, lambda: nn.Linear(4, 3)),
    "mnasnet-no-metadata": (lambda: _mnasnet_sd(False), "torchvision.models:mnasnet0_5", MNAS,
                            lambda: __import__("torchvision").models.mnasnet0_5(num_classes=10)),
    "mnasnet-metadata": (lambda: _mnasnet_sd(True), "torchvision.models:mnasnet0_5", MNAS,
                         lambda: __import__("torchvision").models.mnasnet0_5(num_classes=10)),
    "lazy-linear": (_linear_sd, "torch.nn:LazyLinear", {"out_features": 3}, lambda: nn.LazyLinear(3)),
    "lazy-linear-missing-bias": (lambda: OrderedDict([("weight", torch.ones(3, 7))]), "torch.nn:LazyLinear",
                                 {"out_features": 3}, lambda: nn.LazyLinear(3)),
    "lazy-head": (_lazy_from_full, "compat_models:LazyHead", {}, cm.LazyHead),
    "lazy-head-wrong-body": (lambda: {"body.weight": torch.ones(3, 5), "body.bias": torch.ones(3)},
                             "compat_models:LazyHead", {}, cm.LazyHead),
    "extra-state-accepted": (lambda: _extra(None), "compat_models:WithExtraState", {}, cm.WithExtraState),
    "extra-state-rejected": (lambda: _extra(None), "compat_models:RejectsExtraState", {}, cm.RejectsExtraState),
    "extra-state-v2-accepted": (lambda: _extra(2), "compat_models:RejectsExtraState", {}, cm.RejectsExtraState),
    "extra-state-missing": (lambda: OrderedDict((k, v) for k, v in cm.WithExtraState().state_dict().items()
                                                if k != "_extra_state"),
                            "compat_models:RejectsExtraState", {}, cm.RejectsExtraState),
    # a tensor-valued extra state: its values are not read, so set_extra_state is not run (a note says so)
    "extra-state-tensor": (lambda: cm.TensorExtraState().state_dict(), "compat_models:TensorExtraState", {},
                           cm.TensorExtraState),
    # parametrizations.weight_norm converts old weight_g/weight_v itself (a load pre-hook)
    "weight-norm-old-into-new": (lambda: cm.weight_normed_old().state_dict(), "compat_models:weight_normed", {},
                                 cm.weight_normed),
    "spectral-new-into-old": (lambda: cm.spectral_normed().state_dict(), "compat_models:spectral_normed_old", {},
                              cm.spectral_normed_old),
    "spectral-old-into-new": (lambda: cm.spectral_normed_old().state_dict(), "compat_models:spectral_normed", {},
                              cm.spectral_normed),
}


@pytest.mark.parametrize("name", list(CASES))
def test_verdict_equals_torch(name: str, tmp_path: Path) -> None:
    make, spec, kwargs, fresh = CASES[name]
    path = str(tmp_path / "ckpt.pt")
    torch.save(make(), path)
    live, snap = ckptlint_says(path, spec, kwargs)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for p in live.state_dict.path:
        loaded = loaded[p]
    t = torch_says(fresh, loaded)
    agree(live, t, f"{name} (live)")
    assert live.exact, name
    if name == "extra-state-tensor":
        assert any("set_extra_state accepts it is not checked" in n for n in live.result.notes)
    if snap.exact:
        agree(snap, t, f"{name} (snapshot)")
    else:  # the snapshot cannot run the target's own code: it says so
        assert snap.result.notes, name
        if name.startswith("mnasnet"):  # ... but it recorded what MNASNet's load code does without a version
            agree(snap, t, f"{name} (snapshot)")
    # the torch side really is what the case is about (a case that tests nothing fails here)
    assert WHAT_TORCH_DOES[name](t), (name, t)


WHAT_TORCH_DOES: dict[str, Callable[[Torch], bool]] = {
    "empty-into-params": lambda t: t.nonstrict_ok and not t.strict_ok and len(t.missing) == 8,
    "empty-ordereddict": lambda t: len(t.missing) == 8,
    "empty-nested": lambda t: len(t.missing) == 8,
    "empty-into-no-params": lambda t: t.strict_ok,
    "meta-all": lambda t: t.copy_errors == {"weight", "bias"} and not t.nonstrict_ok,
    "meta-one": lambda t: t.copy_errors == {"bias"},
    "meta-wrong-shape": lambda t: set(t.shape) == {"weight"} and t.copy_errors == {"bias"},
    "meta-unexpected": lambda t: t.unexpected == {"ghost"} and t.nonstrict_ok and not t.copy_errors,
    "mnasnet-no-metadata": lambda t: t.load_error == "ValueError",
    "mnasnet-metadata": lambda t: t.strict_ok,
    "lazy-linear": lambda t: t.strict_ok,
    "lazy-linear-missing-bias": lambda t: t.missing == {"bias"} and t.nonstrict_ok,
    "lazy-head": lambda t: t.strict_ok,
    "lazy-head-wrong-body": lambda t: set(t.shape) == {"body.weight"} and "head.weight" in t.missing,
    "extra-state-accepted": lambda t: t.strict_ok,
    "extra-state-rejected": lambda t: t.load_error == "ValueError",
    "extra-state-v2-accepted": lambda t: t.strict_ok,
    "extra-state-missing": lambda t: t.missing == {"_extra_state"},
    "extra-state-tensor": lambda t: t.strict_ok,
    "weight-norm-old-into-new": lambda t: t.strict_ok,
    # the old spectral_norm's own pre-hook also wants a computed '0.weight' from checkpoints without its version
    "spectral-new-into-old": lambda t: "0.weight" in t.missing and len(t.unexpected) == 3,
    "spectral-old-into-new": lambda t: t.unexpected == {"0.weight_orig", "0.weight_u", "0.weight_v"},
}


def test_empty_checkpoint_is_every_key_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "e.pt")
    torch.save({}, path)
    live, _ = ckptlint_says(path, "compat_models:ModelA")
    every = set(cm.ModelA().state_dict()) - {"bn.num_batches_tracked"}  # BatchNorm fills it (no _metadata)
    assert set(live.result.missing) == every
    assert live.fix is not None and set(live.fix.random_init) == every
    assert not live.fix.strict


def test_meta_tensor_fix_names_the_key_it_leaves(tmp_path: Path) -> None:
    path = str(tmp_path / "m.pt")
    torch.save(_meta(_linear_sd(), ("bias",)), path)
    live, snap = ckptlint_says(path, "torch.nn:Linear", LIN)
    for rep in (live, snap):
        assert rep.fix is not None and rep.fix.drop == ["bias"] and rep.fix.random_init == ["bias"]
        assert any("bias" in d and "discarded" in d for d in rep.fix.diagnosis)
