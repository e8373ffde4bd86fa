"""Module renames never load wrong values when the file's key order is not the saving order.

safetensors headers (and shard indexes, and state_dicts re-saved from them) list keys by name, so
the order-preserving alignment would pair a BERT checkpoint's encoder LayerNorm with the model's
``bert.embeddings.LayerNorm`` (same shapes, wrong values). Each case here is saved as safetensors,
as a name-sorted pickle and as a plain pickle; its fix snippet runs unchanged in a new interpreter
and every model tensor is compared with the checkpoint tensor the test knows belongs there.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ckptlint
from ckptlint.compat.analyze import CompatAnalysis, analyze
from ckptlint.targets.resolve import live_signature

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import compat_models as cm  # noqa: E402 - after the path set-up


@dataclass
class Case:
    source: dict[str, torch.Tensor]
    spec: str
    mapping: dict[str, str]
    """model key -> checkpoint key whose value it must get."""
    initial: set[str]
    ordered_moves: bool
    """Whether the fix moves modules (the vgg index shift) or only adds a prefix (BERT)."""


def _seeded(factory: Callable[[], torch.nn.Module], seed: int = 7) -> torch.nn.Module:
    torch.manual_seed(seed)
    return factory()


def bert() -> Case:
    sd = _seeded(cm.MiniBert).state_dict()
    return Case(dict(sd), "compat_models:MiniBertForSequenceClassification", {"bert." + k: k for k in sd},
                {"classifier.weight", "classifier.bias"}, False)


def vgg() -> Case:
    sd = _seeded(cm.mini_vgg).state_dict()
    moves = {"0.0": "0.0", "0.3": "0.4", "0.6": "0.8", "0.8": "0.11", "2": "2"}
    mapping = {f"{new}.{leaf}": f"{old}.{leaf}" for old, new in moves.items() for leaf in ("weight", "bias")}
    bn = {f"0.{i}.{leaf}" for i in (1, 5, 9, 12)
          for leaf in ("weight", "bias", "running_mean", "running_var")}
    return Case(dict(sd), "compat_models:mini_vgg_bn", mapping, bn, True)


MODELS = {"bert": bert, "vgg": vgg}
SAVES = ("safetensors", "sorted-pickle", "pickle")

DRIVER = """
import json, sys, torch
for snippet, out in json.load(open(sys.argv[1])):
    torch.manual_seed(7)
    ns = {"__name__": "__main__"}
    exec(compile(open(snippet).read(), snippet, "exec"), ns)
    torch.save(ns["model"].state_dict(), out)
"""


def _save(case: Case, how: str, path: Path) -> None:
    if how == "safetensors":
        save_file({k: v.contiguous() for k, v in case.source.items()}, str(path))
    elif how == "sorted-pickle":  # e.g. converted from safetensors: load_file's order is by name
        torch.save(OrderedDict(sorted(case.source.items())), path)
    else:
        torch.save(OrderedDict(case.source.items()), path)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, CompatAnalysis, dict[str, torch.Tensor]]]:
    from conftest import python_process

    root = tmp_path_factory.mktemp("sorted")
    work: list[tuple[str, str]] = []
    staged: dict[str, tuple[Case, CompatAnalysis, Path]] = {}
    for model, make in MODELS.items():
        for how in SAVES:
            case = make()
            name = f"{model}-{how}"
            path = root / (f"{name}.safetensors" if how == "safetensors" else f"{name}.pt")
            _save(case, how, path)
            sig, live = live_signature(case.spec, {})
            analysis = analyze(ckptlint.inspect(str(path)), sig, model=live)
            assert analysis.fix is not None, f"{name}: no fix ({analysis.result})"
            snippet = root / f"{name}_snippet.py"
            snippet.write_text(analysis.fix.snippet)
            out = root / f"{name}_loaded.pt"
            work.append((str(snippet), str(out)))
            staged[name] = (case, analysis, out)
    jobs = root / "jobs.json"
    jobs.write_text(json.dumps(work))
    proc = python_process("-c", DRIVER, str(jobs), cwd=root, pythonpath=[TESTS])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: (case, a, torch.load(out, weights_only=True)) for name, (case, a, out) in staged.items()}


@pytest.mark.parametrize("name", [f"{m}-{h}" for m in MODELS for h in SAVES])
def test_every_tensor_gets_its_own_value(name: str, ran: dict[str, tuple[Case, CompatAnalysis,
                                                                             dict[str, torch.Tensor]]]) -> None:
    case, analysis, loaded = ran[name]
    fix = analysis.fix
    assert fix is not None
    assert analysis.state_dict.ordered == (name.endswith("-pickle") and not name.endswith("sorted-pickle"))
    assert set(fix.random_init) == case.initial, fix.diagnosis
    module, _, attr = case.spec.partition(":")
    reference = _seeded(getattr(__import__(module), attr)).state_dict()
    assert set(loaded) == set(reference)
    for key, value in loaded.items():
        if key in case.mapping:
            want = case.source[case.mapping[key]]
            assert torch.equal(value, want), f"{name}: {key} does not hold {case.mapping[key]}"
        else:
            assert key in fix.random_init or key in fix.backfilled, f"{name}: {key} not named as initial"
            assert torch.equal(value, reference[key]), f"{name}: {key} is not its initial value"
    moved = any("go to other model modules" in d for d in fix.diagnosis)
    assert moved == case.ordered_moves, fix.diagnosis
    assert not any("bert.embeddings.LayerNorm" in d and "->" in d for d in fix.diagnosis)
