"""``@record`` classes behave as the dataclasses they replace (src/ckptlint/record.py).

The oracle: for every record class in ckptlint, ``dataclasses.dataclass`` applied to a class with the
same fields (annotations, defaults, factories, ``compare``) and the same ``frozen``/``slots``/``kw_only``.
Random field values, constructed positionally and by keyword with defaults left out; then construction
errors, ``repr``, ``==``, ``hash``, frozen assignment and deletion, pickling, copying, ``__match_args__``,
and what the ``dataclasses`` module itself says (``fields``, ``asdict``, ``replace``, ``is_dataclass``)."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil
import random
from typing import Any

import pytest

import ckptlint
from ckptlint.record import _MISSING, dataclass_of, field, field_names, record, replace


def _all_records() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(ckptlint.__path__, "ckptlint."):
        if info.name == "ckptlint.__main__":  # runs the command line
            continue
        module = importlib.import_module(info.name)  # torch stays lazy: no module imports it at its top
        for value in vars(module).values():
            if isinstance(value, type) and field_names(value) is not None:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


RECORDS = _all_records()


def _reference(cls: type) -> type:
    """The dataclass ``cls`` stands for, its methods made by the dataclasses module."""
    slots = "__slots__" in cls.__dict__
    kw_only = cls.__match_args__ == () and bool(cls.__record_fields__)  # type: ignore[attr-defined]
    return dataclass_of(cls, cls.__dataclass_params__.frozen, kw_only, slots)  # type: ignore[attr-defined]


_POOL: list[Any] = [0, 1, -7, "a", "", "strided", None, True, False, 0.5, float("nan"), (), (1, 2), ("x", (3,)),
                    [1], {"k": 1}, frozenset({1})]


def _arguments(cls: type, rng: random.Random) -> tuple[list[Any], dict[str, Any]]:
    specs = cls.__record_fields__  # type: ignore[attr-defined]
    values = {s.name: rng.choice(_POOL) for s in specs}
    required = [s.name for s in specs if s.default is _MISSING and s.default_factory is _MISSING]
    keep = [s.name for s in specs if s.name in required or rng.random() < 0.6]
    if not cls.__match_args__ or rng.random() < 0.5:  # kw_only, or by keyword
        return [], {k: values[k] for k in keep}
    cut = rng.randrange(len(specs) + 1)
    names = [s.name for s in specs]
    positional = [values[k] for k in names[:cut]]
    return positional, {k: values[k] for k in keep if k not in names[:cut]}


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", repr(fn()))
    except Exception as e:  # noqa: BLE001 (any error: compared by type only, the messages are worded differently)
        return ("error", type(e).__name__)


def test_every_record_class_is_found() -> None:
    names = {c.__qualname__ for c in RECORDS}
    assert {"Finding", "Inventory", "TensorRecord", "Limits", "FileReport", "Config"} <= names
    assert len(RECORDS) >= 40


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_a_record_behaves_as_its_dataclass(cls: type) -> None:
    ref = _reference(cls)
    rng = random.Random(cls.__qualname__)
    assert cls.__match_args__ == ref.__match_args__  # type: ignore[attr-defined]
    assert str(inspect.signature(cls)) == str(inspect.signature(ref))  # what help() shows
    if (cls.__doc__ or "").startswith(cls.__name__ + "("):  # no docstring of its own: the one dataclasses writes
        assert cls.__doc__ == ref.__doc__
    assert dataclasses.is_dataclass(cls)
    made: list[tuple[Any, Any]] = []
    for _ in range(40):
        args, kwargs = _arguments(cls, rng)
        rec, expected = cls(*args, **kwargs), ref(*args, **kwargs)
        assert repr(rec) == repr(expected)
        assert _outcome(lambda: hash(rec)) == _outcome(lambda: hash(expected))  # noqa: B023
        assert rec != expected and expected != rec  # different classes: never equal
        back = pickle.loads(pickle.dumps(rec))  # noqa: S301 (our own bytes)
        assert type(back) is cls and repr(back) == repr(rec)  # (the reference is not importable by name)
        assert repr(copy.copy(rec)) == repr(rec) and repr(copy.deepcopy(rec)) == repr(rec)
        assert repr(dataclasses.asdict(rec)) == repr(dataclasses.asdict(expected))
        made.append((rec, expected))
    for (a, ra), (b, rb) in zip(made, made[1:] + made[:1], strict=True):
        assert (a == b) == (ra == rb) and (a != b) == (ra != rb) and (a == a) == (ra == ra)
    # construction errors: a missing, an extra positional, an unknown and a duplicated argument
    specs = cls.__record_fields__  # type: ignore[attr-defined]
    n = len(specs)
    for args, kwargs in [((), {}), ((0,) * (n + 1), {}), ((), {"no_such_field": 1}),
                         ((0,), {specs[0].name: 0} if n else {})]:
        assert _outcome(lambda: cls(*args, **kwargs)) == _outcome(lambda: ref(*args, **kwargs))  # noqa: B023
    for name in [s.name for s in specs][:3] + ["not_a_field"]:
        rec, expected = copy.copy(made[0][0]), copy.copy(made[0][1])
        for act in (setattr, delattr):
            want = _outcome(lambda: act(expected, name, 5) if act is setattr else act(expected, name))  # noqa: B023
            if want == ("error", "TypeError") and "__slots__" in cls.__dict__:
                # CPython's frozen slotted dataclass calls super() with the class it replaced (3.10-3.13):
                # a name that is not a field gets that TypeError; a record refuses it as frozen
                want = ("error", "FrozenInstanceError")
            assert _outcome(lambda: act(rec, name, 5) if act is setattr else act(rec, name)) == want  # noqa: B023
            assert _outcome(lambda: repr(rec)) == _outcome(lambda: repr(expected))  # noqa: B023
    rec, expected = made[1]
    assert [(f.name, f.type, f.compare, repr(f.default), f.default_factory) for f in dataclasses.fields(cls)] == \
        [(f.name, f.type, f.compare, repr(f.default), f.default_factory) for f in dataclasses.fields(ref)]
    if specs:
        change = {specs[-1].name: "changed"}
        assert repr(replace(rec, **change)) == repr(dataclasses.replace(expected, **change))
        assert repr(dataclasses.replace(rec, **change)) == repr(dataclasses.replace(expected, **change))


def test_fields_defaults_and_factories_are_read_from_the_class_body() -> None:
    @record
    class Base:
        """A base record."""

        a: int
        b: str = "b"
        c: list[int] = field(default_factory=list)
        d: object = field(default=None, compare=False)

    @record(slots=True)
    class Child(Base):
        """Inherits Base's fields, adds one."""

        e: int = 5

    one, two = Base(1), Base(1)
    assert (one.b, one.c, one.d) == ("b", [], None) and one.c is not two.c  # a fresh list each
    assert Base(1, d=1) == Base(1, d=2)  # compare=False
    assert Base.b == "b" and not hasattr(Base, "c")  # class attributes as dataclasses leaves them
    assert field_names(Child) == ("a", "b", "c", "d", "e") and Child.__slots__ == ("e",)
    assert repr(Child(0, e=1)).endswith(".<locals>.Child(a=0, b='b', c=[], d=None, e=1)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Child(0).e = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword"):
        replace(one, nothing=1)


def test_declaration_errors_are_the_dataclass_ones() -> None:
    with pytest.raises(ValueError, match="mutable default"):
        @record
        class Mutable:
            """A list default would be shared."""

            a: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @record
        class Order:
            """A required field after a defaulted one."""

            a: int = 0
            b: int  # type: ignore[misc]


def test_a_mutable_record_is_unhashable_and_assignable() -> None:
    @record(frozen=False)
    class Builder:
        """Collects items."""

        items: list[int] = field(default_factory=list)

    b = Builder()
    b.items = [1]
    assert b == Builder([1]) and b.__hash__ is None
