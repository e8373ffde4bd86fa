"""``@record``: ckptlint's data classes, dataclasses without the ``dataclasses`` module at start-up.

``@dataclass`` cost a torch-free ``ckptlint check`` about a third of its start-up here: importing
``dataclasses`` (it imports inspect, ast, dis and tokenize: ~7 ms) and compiling the methods of each of
the ~20 classes a check touches with ``exec`` (~0.5 ms a class). ``record`` builds the same methods from
closures. What a class promises is unchanged (docs/api.md: "frozen dataclasses"): ``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, frozen ``__setattr__``/``__delattr__`` raising
``dataclasses.FrozenInstanceError``, ``__match_args__``, slots, pickling; and the ``dataclasses`` module
still sees a dataclass: ``__dataclass_fields__``/``__dataclass_params__`` are made on first access by
letting ``dataclasses`` decorate a shadow class with the same fields, so ``dataclasses.fields``,
``asdict``, ``replace`` and ``is_dataclass`` work (and import it then). tests/test_record.py holds every
record class of ckptlint to that shadow dataclass. ckptlint's own code uses :func:`replace` below, which
runs on the check path.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorator: decorator

T = TypeVar("T")
C = TypeVar("C", bound=type)
_MISSING: Any = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()
_FACTORY: Any = type("FACTORY", (), {"__repr__": lambda self: "<factory>"})()  # as inspect shows a dataclass's


class FieldSpec:
    """What :func:`field` asks for one field: read once, when its class is decorated."""

    __slots__ = ("compare", "default", "default_factory", "name", "type")

    def __init__(self, default: Any, default_factory: Any, compare: bool) -> None:
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.default, self.default_factory, self.compare = default, default_factory, compare
        self.name, self.type = "", ""


@overload
def field(*, default: T, compare: bool = True) -> T: ...
@overload
def field(*, default_factory: Callable[[], T], compare: bool = True) -> T: ...
def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True) -> Any:
    """``dataclasses.field`` for records (the options ckptlint uses)."""
    return FieldSpec(default, default_factory, compare)


@overload
def record(cls: C, /) -> C: ...
@overload
def record(*, frozen: bool = True, slots: bool = False, kw_only: bool = False) -> Callable[[C], C]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = True, slots: bool = False, kw_only: bool = False) -> Any:
    """``@dataclass(frozen=frozen, slots=slots, kw_only=kw_only)``, frozen unless told otherwise."""
    def wrap(c: type) -> type:
        return _build(c, frozen, slots, kw_only)

    return wrap if cls is None else wrap(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace`` for a record: a new one, ``__init__`` given the other fields' values."""
    specs: tuple[FieldSpec, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    for spec in specs:
        if spec.name not in changes:
            changes[spec.name] = getattr(obj, spec.name)
    return type(obj)(**changes)


def field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of a record class in order; None for any other class."""
    specs = cls.__dict__.get("__record_fields__") if isinstance(cls, type) else None
    return None if specs is None else tuple(s.name for s in specs)


def _build(cls: type, frozen: bool, slots: bool, kw_only: bool) -> type:
    specs: dict[str, FieldSpec] = {}
    for base in cls.__mro__[-1:0:-1]:
        for spec in base.__dict__.get("__record_fields__", ()):
            specs[spec.name] = spec
    own: list[str] = []
    # inspect.get_annotations would import inspect, the cost this module avoids
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar", "InitVar")):
            raise TypeError(f"{cls.__qualname__}.{name}: records have no ClassVar or InitVar fields")
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, FieldSpec) else FieldSpec(value, _MISSING, True)
        if isinstance(spec.default, (list, dict, set)):
            raise ValueError(f"mutable default {type(spec.default)} for field {name} is not allowed: "
                             "use default_factory")
        spec.name, spec.type = name, annotation
        specs[name] = spec
        own.append(name)
    fields = tuple(specs.values())
    if not kw_only:
        seen_default = False
        for spec in fields:
            has_default = spec.default is not _MISSING or spec.default_factory is not _MISSING
            if seen_default and not has_default:
                raise TypeError(f"non-default argument {spec.name!r} follows default argument")
            seen_default = seen_default or has_default
    if slots:
        body = {k: v for k, v in cls.__dict__.items() if k not in own and k not in ("__dict__", "__weakref__")}
        body["__slots__"] = tuple(own)
        made = type(cls)(cls.__name__, cls.__bases__, body)
        made.__qualname__ = cls.__qualname__
        cls = made
    else:
        for name in own:
            spec = specs[name]
            if spec.default is _MISSING:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    names = tuple(s.name for s in fields)
    if cls.__doc__ is None:  # what dataclasses writes there: the signature, without inspect
        cls.__doc__ = f"{cls.__name__}({'*, ' if kw_only and fields else ''}{', '.join(map(_parameter, fields))})"
    compared = tuple(s.name for s in fields if s.compare)
    methods: dict[str, Any] = {
        "__record_fields__": fields,
        "__init__": _init(cls, fields, 0 if kw_only else len(fields)),
        "__repr__": _repr(names),
        "__eq__": _eq(compared),
        "__match_args__": () if kw_only else names,
        "__signature__": _Signature(kw_only),
        "__dataclass_fields__": _Shadow("__dataclass_fields__", frozen, kw_only),
        "__dataclass_params__": _Shadow("__dataclass_params__", frozen, kw_only),
    }
    if frozen:
        methods["__hash__"] = _hash(compared)
        methods["__setattr__"], methods["__delattr__"] = _frozen(cls, frozenset(names))
        if slots:
            methods["__getstate__"], methods["__setstate__"] = _state(names)
    else:
        methods["__hash__"] = None
    for key, value in methods.items():
        if key in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__") and callable(value):
            value.__qualname__ = f"{cls.__qualname__}.{key}"
        setattr(cls, key, value)
    return cls


def _parameter(spec: FieldSpec) -> str:
    """One parameter as ``str(inspect.signature(...))`` writes it (the annotations are strings here)."""
    default = "" if spec.default is _MISSING and spec.default_factory is _MISSING else \
        f" = {_FACTORY!r}" if spec.default_factory is not _MISSING else f" = {spec.default!r}"
    return f"{spec.name}: {spec.type!r}{default}"


def _init(cls: type, fields: tuple[FieldSpec, ...], positional: int) -> Callable[..., None]:
    names = tuple(s.name for s in fields)
    count = len(names)
    template = {s.name: s.default for s in fields}  # field order; _MISSING where a value must be given
    required = frozenset(s.name for s in fields if s.default is _MISSING)
    in_dict = not any("__slots__" in c.__dict__ for c in cls.__mro__[:-1])  # every field lives in __dict__
    fill = tuple((s.name, s.default, s.default_factory) for s in fields)
    setter = object.__setattr__

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The fields' values in order, as the generated ``__init__`` binds them (and its TypeErrors)."""
        given = len(args)
        if given > positional:
            raise TypeError(f"{cls.__qualname__}.__init__() takes {positional + 1} positional arguments "
                            f"but {given + 1} were given")
        values = list(args)
        for name, default, factory in fill[given:]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif default is not _MISSING:
                values.append(default)
            elif factory is not _MISSING:
                values.append(factory())
            else:
                raise TypeError(f"{cls.__qualname__}.__init__() missing 1 required "
                                f"{'positional' if positional else 'keyword-only'} argument: {name!r}")
        if kwargs:
            name = next(iter(kwargs))
            why = "multiple values for argument" if name in names else "an unexpected keyword argument"
            raise TypeError(f"{cls.__qualname__}.__init__() got {why} {name!r}")
        return values

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if not args:  # by keyword, the usual call: the defaults and the arguments merged in C, in field order
            given = {**template, **kwargs}
            if len(given) == count and kwargs.keys() >= required:
                if in_dict:
                    self.__dict__.update(given)
                else:
                    for name in names:
                        setter(self, name, given[name])
                return
        elif len(args) == count <= positional and not kwargs:
            for name, value in zip(names, args, strict=True):
                setter(self, name, value)
            return
        for name, value in zip(names, bind(args, kwargs), strict=True):
            setter(self, name, value)

    return __init__


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The fields' values as a tuple, as the generated dataclass methods compare and hash them (a tuple
    compares items by identity first: a NaN field equals itself)."""
    if not names:
        return lambda obj: ()
    get = attrgetter(*names)
    return get if len(names) > 1 else (lambda obj: (get(obj),))


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    return __repr__


def _eq(names: tuple[str, ...]) -> Callable[[Any, Any], Any]:
    values = _values(names)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    return __eq__


def _hash(names: tuple[str, ...]) -> Callable[[Any], int]:
    values = _values(names)

    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _frozen(cls: type, names: frozenset[str]) -> tuple[Callable[..., None], Callable[..., None]]:
    def refuse(self: Any, name: str) -> None:
        from dataclasses import FrozenInstanceError  # only on the error path: the import costs ~7 ms

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            refuse(self, name)
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            refuse(self, name)
        object.__delattr__(self, name)

    return __setattr__, __delattr__


def _state(names: tuple[str, ...]) -> tuple[Callable[[Any], list[Any]], Callable[[Any, Any], None]]:
    """Frozen slotted records pickle by field values (no ``__dict__``; ``__setattr__`` refuses)."""
    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: Any) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    return __getstate__, __setstate__


class _Shadow:
    """``__dataclass_fields__``/``__dataclass_params__`` of a record, made on first access: the
    ``dataclasses`` module decorates a class with the same fields, and both attributes are copied from it."""

    def __init__(self, attribute: str, frozen: bool, kw_only: bool) -> None:
        self.attribute, self.frozen, self.kw_only = attribute, frozen, kw_only

    def __get__(self, obj: Any, owner: type) -> Any:
        shadow = dataclass_of(owner, self.frozen, self.kw_only)
        for name in ("__dataclass_fields__", "__dataclass_params__"):
            type.__setattr__(owner, name, getattr(shadow, name))
        return getattr(shadow, self.attribute)


def dataclass_of(cls: type, frozen: bool, kw_only: bool, slots: bool = False) -> type:
    """The dataclass a record class stands for: ``dataclasses`` decorates a class with its fields (tests/test_record.py
    compares the two)."""
    import dataclasses

    body: dict[str, Any] = {"__annotations__": {}, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    for spec in cls.__record_fields__:  # type: ignore[attr-defined]
        body["__annotations__"][spec.name] = spec.type
        kwargs: dict[str, Any] = {"compare": spec.compare}
        if spec.default is not _MISSING:
            kwargs["default"] = spec.default
        if spec.default_factory is not _MISSING:
            kwargs["default_factory"] = spec.default_factory
        body[spec.name] = dataclasses.field(**kwargs)
    made: type = dataclasses.dataclass(frozen=frozen, kw_only=kw_only, slots=slots)(type(cls.__name__, (), body))
    return made


class _Signature:
    """``inspect.signature`` of a record class (``help()`` shows it): the parameters the generated dataclass
    ``__init__`` has, not the closure's ``*args, **kwargs``; made when asked (inspect is imported by then)."""

    def __init__(self, kw_only: bool) -> None:
        self.kw_only = kw_only

    def __get__(self, obj: Any, owner: type) -> Any:
        import inspect

        kind = inspect.Parameter.KEYWORD_ONLY if self.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([
            inspect.Parameter(spec.name, kind, annotation=spec.type, default=(
                _FACTORY if spec.default_factory is not _MISSING
                else inspect.Parameter.empty if spec.default is _MISSING else spec.default))
            for spec in owner.__record_fields__], return_annotation=None)  # type: ignore[attr-defined]
