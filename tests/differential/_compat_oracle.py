"""torch's ``load_state_dict`` as the oracle for the compat exactness tests (issue #12).

``torch_says`` runs a real CPU model's load with ``strict=False`` and ``strict=True`` and parses
torch's error lines; ``agree`` asserts ckptlint's analysis says the same.
"""

from __future__ import annotations

import ast
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import ckptlint
from ckptlint.compat.analyze import CompatAnalysis, analyze
from ckptlint.targets.resolve import live_signature
from ckptlint.targets.signature import Signature

_SIZE = re.compile(r"^size mismatch for (.+?): copying a param with shape torch\.Size\((\[.*?\])\) from checkpoint, "
                   r"the shape in current model is torch\.Size\((\[.*?\])\)\.$")
_COPY = re.compile(r'^While copying the parameter named "(.+?)"')


@dataclass
class Torch:
    """What torch's load_state_dict does with one state_dict."""

    missing: set[str]
    unexpected: set[str]
    shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    copy_errors: set[str]
    """Keys torch raised for while copying (a non-tensor, a meta tensor)."""
    load_error: str | None
    """The exception type when something other than load_state_dict's RuntimeError is raised."""
    strict_ok: bool
    nonstrict_ok: bool


def torch_says(fresh: Callable[[], nn.Module], sd: Any) -> Torch:
    shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    copy_errors: set[str] = set()
    try:
        res = fresh().load_state_dict(sd, strict=False)
        nonstrict_ok = True
    except RuntimeError as e:
        if not str(e).startswith("Error(s) in loading state_dict"):
            raise
        nonstrict_ok = False
        for line in str(e).split("\n\t")[1:]:
            m = _SIZE.match(line.strip())
            if m:
                shape[m[1]] = (tuple(ast.literal_eval(m[2])), tuple(ast.literal_eval(m[3])))
                continue
            m = _COPY.match(line.strip())
            assert m, f"unexpected torch error: {line}"
            copy_errors.add(m[1])
        # the key lists torch would report: the same load with the failing values made loadable
        own = fresh().state_dict()
        patched = OrderedDict((k, torch.zeros_like(own[k]) if k in shape or k in copy_errors else v)
                              for k, v in sd.items())
        if hasattr(sd, "_metadata"):
            patched._metadata = sd._metadata  # type: ignore[attr-defined]
        res = fresh().load_state_dict(patched, strict=False)
    except Exception as e:  # noqa: BLE001 - the target's own load code raised
        return Torch(set(), set(), {}, set(), type(e).__name__, False, False)
    try:
        fresh().load_state_dict(sd, strict=True)
        strict_ok = True
    except RuntimeError:
        strict_ok = False
    return Torch(set(res.missing_keys), set(res.unexpected_keys), shape, copy_errors, None, strict_ok, nonstrict_ok)


def ckptlint_says(path: str, spec: str,
                  kwargs: dict[str, Any] | None = None) -> tuple[CompatAnalysis, CompatAnalysis]:
    """(live analysis, snapshot analysis) of the file against the target."""
    sig, model = live_signature(spec, kwargs or {})
    inv = ckptlint.inspect(path)
    live = analyze(inv, sig, model=model)
    snap = analyze(inv, Signature.from_json(json.loads(json.dumps(sig.to_json()))))
    return live, snap


def agree(rep: CompatAnalysis, t: Torch, label: str = "") -> None:
    r = rep.result
    if t.load_error:
        assert r.load_error is not None and r.load_error.startswith(t.load_error + ":"), (label, r.load_error)
        assert not r.strict_ok and not r.nonstrict_ok, label
        return
    assert r.load_error is None, (label, r.load_error)
    assert set(r.missing) == t.missing, label
    assert set(r.unexpected) == t.unexpected, label
    assert r.shape_mismatch == t.shape, label
    assert set(r.non_tensor) == t.copy_errors, label
    assert r.strict_ok == t.strict_ok, label
    assert r.nonstrict_ok == t.nonstrict_ok, label
