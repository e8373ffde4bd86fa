"""REDUCE_ARITY (safety/torch_rules.py) against the installed torch's own functions.

Every function on torch's weights_only allowlist (``_get_allowed_globals``) must be in the table, with the
positional-argument range ``inspect.signature`` gives; and a real call with a count outside it raises
TypeError before doing anything (so the verdict's "no" is torch's)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from torch._weights_only_unpickler import _get_allowed_globals

from ckptlint.safety.torch_rules import REDUCE_ARITY

FUNCTIONS = {k: v for k, v in _get_allowed_globals().items() if inspect.isfunction(v) or inspect.isbuiltin(v)}


def _positional_range(fn: Any) -> tuple[int, int]:
    params = inspect.signature(fn).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert not any(p.kind == p.VAR_POSITIONAL for p in params)
    assert not any(p.kind == p.KEYWORD_ONLY and p.default is p.empty for p in params)
    return sum(1 for p in positional if p.default is p.empty), len(positional)


def test_table_lists_every_allowlisted_function() -> None:
    assert len(FUNCTIONS) >= 10
    assert set(FUNCTIONS) == set(REDUCE_ARITY)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_arity_is_the_signatures(name: str) -> None:
    assert REDUCE_ARITY[name] == _positional_range(FUNCTIONS[name])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_count_outside_raises_type_error(name: str) -> None:
    low, high = REDUCE_ARITY[name]
    for n in {low - 1, high + 1} - {-1}:
        with pytest.raises(TypeError):
            FUNCTIONS[name](*([None] * n))
