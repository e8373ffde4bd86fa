"""An inert pickle module: CPython's C unpickler requests globals, we record them and import nothing.

Passed as ``torch.load(f, pickle_module=inert, weights_only=False)`` it is driven by
torch's own file handling (zip records, the legacy pickle sequence, the tar members);
``inert.load(f)`` is ``pickle.load`` with the same stand-ins. ``find_class`` returns a
fresh placeholder class named after the global; calling it, ``__setstate__``,
``__setitem__``, ``append``/``extend``/``add`` accept anything, so every opcode after a
global keeps running exactly as far as CPython's loop goes. Never an import, never a call
into the named object: the oracle is safe to run on hostile bytes (tests/fuzz/test_fuzz_short.py
proves it with a marker-file payload).

One exception, documented: while torch.load drives it, ``torch.<X>Storage`` (and
``torch.storage.UntypedStorage``) classes come back as torch's own class objects (torch is
already imported; no code from the file runs), because torch's own ``persistent_load`` and
tar reader read their dtype: a placeholder there would stop torch where the real loader
goes on. The generators never call a storage class (that would run torch's constructor).

The names torch's own weights_only unpickler allows (``torch._weights_only_unpickler._get_allowed_globals``:
``collections.OrderedDict``, ``builtins.set``, ``torch._utils._rebuild_tensor_v2``, ``torch.Size``,
dtypes, tensor types …) come back as the real objects, read from the table torch already built (no import):
torch deems them safe to call on untrusted data, and a stand-in there would accept what the real
object rejects (``OrderedDict()`` has no ``.add``; ``_rebuild_tensor_v2`` checks its arity; the tar
reader assigns a real tensor type). Every other name is a placeholder.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import contextlib
import pickle
import sys
from typing import IO, Any

REQUESTS: list[tuple[str, str]] = []
"""Every ``(module, name)`` the C unpickler asked for, in order, since the last :func:`reset`."""

REAL_STORAGE_CLASSES = [False]
"""Whether ``find_class`` returns torch's storage classes themselves (only while torch.load drives it)."""


PLACEHOLDER_NAMES: set[str] = set()
"""The class names of the placeholders made since :func:`reset` (to recognise them in error messages)."""

STAND_IN_RESULTS = [0]
"""How many :func:`load` calls returned a stand-in (a global or a call of one) since :func:`reset`."""


def reset(*, real_storage_classes: bool = False) -> None:
    REQUESTS.clear()
    PLACEHOLDER_NAMES.clear()
    REAL_STORAGE_CLASSES[0] = real_storage_classes
    STAND_IN_RESULTS[0] = 0


def is_stand_in(value: Any) -> bool:
    """A global (or what calling one returned): its real value is unknown to an inert reader."""
    return isinstance(value, Placeholder) or (isinstance(value, type) and issubclass(value, Placeholder))


class _Accept:
    """A method that accepts any arguments, on the placeholder class and on its instances alike.

    The unpickler looks these up with getattr (BUILD: ``__setstate__``, SETITEMS:
    ``__setitem__``, APPENDS: ``extend``/``append``, ADDITEMS: ``add``), also on a global
    itself (BUILD right after GLOBAL), where a plain method would be unbound.
    """

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return _accept


def _accept(*args: Any, **kwargs: Any) -> None:
    return None


class _PlaceholderMeta(type):
    """SETITEMS goes through the type slot (``PyObject_SetItem``), not getattr: on the class itself
    (SETITEM right after GLOBAL) only a metaclass method makes it accept, as documented above."""

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


class Placeholder(metaclass=_PlaceholderMeta):
    """Instances of the classes :func:`placeholder` makes: they accept every protocol the unpickler uses."""

    dump_patches = False
    """torch's legacy reader reads this from pickled module classes (nn.Module's value)."""

    __setstate__ = _Accept()
    __setitem__ = _Accept()
    append = _Accept()
    extend = _Accept()
    add = _Accept()

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder()


def placeholder(module: str, name: str) -> type:
    """A class standing in for ``module.name``: right names, no behaviour.

    A name the file chose may hold NUL or lone surrogates, which ``type()`` refuses; those
    get a neutral class name (the unpickler and torch never read it back).
    """
    short = name.rsplit(".", 1)[-1]
    if "\x00" in short or not short.isprintable() or any(0xD800 <= ord(c) < 0xE000 for c in short):
        short = "placeholder"
    PLACEHOLDER_NAMES.add(short)
    cls = type(short, (Placeholder,), {"__module__": module})
    with contextlib.suppress(TypeError, ValueError):
        cls.__qualname__ = name
    return cls


def _torch_storage_class(module: str, name: str) -> Any:
    if module not in ("torch", "torch.storage") or not name.endswith("Storage"):
        return None
    mod = sys.modules.get(module)
    storage = sys.modules.get("torch.storage")
    if mod is None or storage is None:
        return None
    obj = mod.__dict__.get(name)  # no getattr: torch's lazy module __getattr__ could import
    if isinstance(obj, type) and issubclass(obj, (storage.TypedStorage, storage.UntypedStorage)):
        return obj
    return None


_ALLOWED: dict[str, Any] = {}


def allowed_global(module: str, name: str) -> Any:
    """The real object torch's weights_only unpickler would hand out for ``module.name``, or None.

    Read from the table torch builds from objects it has already imported; storage names are left
    to :func:`_torch_storage_class` (the weights_only table wraps them in a dummy type).
    """
    if not _ALLOWED:
        wou = sys.modules.get("torch._weights_only_unpickler")
        if wou is not None:
            _ALLOWED.update((k, v) for k, v in wou._get_allowed_globals().items() if not k.endswith("Storage"))
    real = _ALLOWED.get(f"{module}.{name}")
    if real is None and module == "builtins" and name in HARMLESS_BUILTINS:
        real = getattr(builtins, name)
    if real is None and module == "__future__":
        future = sys.modules.get("__future__")
        real = getattr(future, name, None) if future is not None and name in future.all_feature_names else None
    return real


HARMLESS_BUILTINS = frozenset({
    "frozenset", "set", "list", "dict", "tuple", "bytes", "bytearray", "str", "int", "float", "complex", "bool",
    "range", "slice", "len", "ValueError",
})
"""Standard types and functions that only build or measure data (no I/O, no attribute access, no code):
returned as themselves, because CPython's opcodes treat them by what they are (BUILD on a ``frozenset()``
has no ``__dict__``, APPENDS on ``set()`` has no ``extend``). ``__future__`` features are real too
(``_Feature`` objects, not callable)."""


def stopped_on_a_stand_in(outcome: str) -> bool:
    """Whether an error message says CPython or torch stopped at an operation on a placeholder.

    What the real object behind a placeholder would have done there (been a tuple of arguments,
    a buffer, iterable, a class torch may assign) is unknown, so that stop is only a lower bound on
    how far a real load goes (docs/fuzzing.md). Recognised: the placeholder's own type in the
    message, and the argument-tuple checks of REDUCE/NEWOBJ/NEWOBJ_EX, whose operand the message
    does not name.
    """
    if "_PlaceholderMeta" in outcome or any(
            m in outcome for m in ("argument list must be a tuple", "NEWOBJ expected an arg tuple",
                                   "NEWOBJ_EX args argument must be a tuple",
                                   "NEWOBJ_EX kwargs argument must be a dict")):
        return True
    return any(f"'{n}'" in outcome for n in PLACEHOLDER_NAMES)


class Unpickler(pickle.Unpickler):
    """The C unpickler with an inert ``find_class``.

    Subclasses (torch's ``UnpicklerWrapper``) get their own ``find_class`` wrapped so the
    request is recorded as the C loop makes it, before torch resolves storage names itself.
    """

    _records_here = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inner = cls.__dict__.get("find_class")
        if inner is None:
            return
        cls._records_here = False

        def find_class(self: Unpickler, module: str, name: str) -> Any:
            REQUESTS.append(_mapped(self, module, name))
            return inner(self, module, name)

        cls.find_class = find_class  # type: ignore[method-assign]

    def find_class(self, module: str, name: str) -> Any:
        module, name = _mapped(self, module, name)
        if self._records_here:
            REQUESTS.append((module, name))
        real = _torch_storage_class(module, name) if REAL_STORAGE_CLASSES[0] else None
        if real is None:
            real = allowed_global(module, name)
        return real if real is not None else placeholder(module, name)


def _mapped(unpickler: pickle.Unpickler, module: str, name: str) -> tuple[str, str]:
    """Python 2 names, renamed as CPython's own find_class does (protocol < 3, fix_imports)."""
    if (module, name) not in _compat_pickle.NAME_MAPPING and module not in _compat_pickle.IMPORT_MAPPING:
        return module, name
    if not _below_protocol_3(unpickler):
        return module, name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[(module, name)]
        return mapped
    return _compat_pickle.IMPORT_MAPPING[module], name


def _below_protocol_3(unpickler: pickle.Unpickler) -> bool:
    """Ask the C unpickler itself: its find_class maps ``copy_reg`` (always imported as copyreg) only then.

    The C unpickler keeps its protocol private; this probe imports nothing new
    (``copyreg`` is loaded at start-up; ``copy_reg`` does not exist on Python 3).
    """
    try:
        pickle.Unpickler.find_class(unpickler, "copy_reg", "_reconstructor")
    except ImportError:
        return False
    return True


def load(file: IO[bytes], **kwargs: Any) -> Any:
    """``pickle.load`` with the inert unpickler (torch calls this for legacy headers and tar members)."""
    value = Unpickler(file, **kwargs).load()
    if is_stand_in(value):
        STAND_IN_RESULTS[0] += 1
    return value


def loads(data: bytes, **kwargs: Any) -> Any:
    import io

    return Unpickler(io.BytesIO(data), **kwargs).load()


# torch.load reads these from its pickle_module.
UnpicklingError = pickle.UnpicklingError
__version__ = "inert"
