"""REDUCE of an allowlisted function with an argument count it does not take (fuzz seed 1 index 68682).

torch.load(weights_only=True) runs ``func(*args)`` on the real function: a legacy file whose
``_rebuild_tensor_v2`` gets 4 arguments raises TypeError ("missing 2 required positional
arguments"), so the verdict is no. The reader records the count as ``"<n> args"`` on the
REDUCE operation; these tests give the judge that fact directly (torch-free)."""

from __future__ import annotations

import pytest

from ckptlint.inventory import FormatFacts, GlobalRef, Inventory, Operation
from ckptlint.safety.allowlist import static_allowed_globals
from ckptlint.safety.weights_only import predict

FN = "torch._utils._rebuild_tensor_v2"


def _inventory(count: int | None, fn: str = FN) -> Inventory:
    module, name = fn.rsplit(".", 1)
    facts = FormatFacts(format="torch-zip", file_size=100, bytes_read=100, streams=("archive/data.pkl",),
                        loaded_streams=("archive/data.pkl",))
    detail = "" if count is None else f"{count} args"
    return Inventory(path="x.pt", facts=facts, tensors=(), storages=(),
                     globals=(GlobalRef(module, name, "archive/data.pkl", 2, "GLOBAL"),), structure=None,
                     metadata={}, operations=(Operation("archive/data.pkl", 40, "REDUCE", f"global:{fn}", detail),))


@pytest.mark.parametrize("count", [0, 4, 5, 8, 20])
def test_wrong_count_is_a_blocker(count: int) -> None:
    v = predict(_inventory(count), static_allowed_globals())
    assert v.loads is False
    assert [b.detail for b in v.blocking] == [
        f"REDUCE calls {FN} with {count} arguments; it takes 6 to 7 (torch raises TypeError)"]
    assert v.blocking[0].offset == 40


@pytest.mark.parametrize("count", [6, 7])
def test_counts_the_function_takes_load(count: int) -> None:
    assert predict(_inventory(count), static_allowed_globals()).loads is True


def test_no_count_recorded_is_no_blocker() -> None:
    assert predict(_inventory(None), static_allowed_globals()).loads is True


def test_exact_arity_function() -> None:
    v = predict(_inventory(2, "torch._utils._rebuild_parameter"), static_allowed_globals())
    assert v.loads is False and "it takes 3 " in v.blocking[0].detail
