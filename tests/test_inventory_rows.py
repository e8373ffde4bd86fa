"""``records_from_columns`` makes the same records as the classes' own ``__init__`` (the readers build
tensor and storage records with it: tests/test_reader_inline.py and the differential suites compare
whole inventories; this is the record-level oracle)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from ckptlint.inventory import StorageRecord, TensorRecord, records_from_columns, slot_setters


def _value(rng: random.Random, i: int) -> Any:
    return rng.choice([None, i, -i, f"s{i}", (i, i + 1), (), ("a", 3), True, False, 0.5 * i, "strided"])


@pytest.mark.parametrize("cls", [TensorRecord, StorageRecord])
def test_records_equal_those_init_makes(cls: type) -> None:
    rng = random.Random(cls.__name__)
    n = len(dataclasses.fields(cls))
    rows = [tuple(_value(rng, i * n + j) for j in range(n)) for i in range(500)]
    made = records_from_columns(cls, zip(*rows, strict=True))
    expected = [cls(*row) for row in rows]
    assert list(made) == expected
    assert [repr(r) for r in made] == [repr(r) for r in expected]
    assert [hash(r) for r in made if _hashable(r)] == [hash(r) for r in expected if _hashable(r)]
    assert all(type(r) is cls for r in made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].dtype = "x"


def _hashable(r: object) -> bool:
    try:
        hash(r)
    except TypeError:
        return False
    return True


def test_no_rows_no_records() -> None:
    assert records_from_columns(TensorRecord, zip(*[], strict=True)) == ()


def test_classes_whose_fields_alone_do_not_make_a_record_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            raise AssertionError

    assert slot_setters(NoSlots) is None and slot_setters(PostInit) is None
    assert slot_setters(StorageRecord) is not None
    for cls in (NoSlots, PostInit):
        with pytest.raises(TypeError):
            records_from_columns(cls, [(1,)])
    with pytest.raises(ValueError, match="different lengths"):
        records_from_columns(StorageRecord, [("k",), ("f",), (1, 2), ("cpu",), (None,), (None,)])
