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
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import pickle
import sys
from typing import IO, Any

REQUESTS: list[tuple[str, str]] = []
"""Every ``(module, name)`` the C unpickler asked for, in order, since the last :func:`reset`."""

REAL_STORAGE_CLASSES = [False]
"""Whether ``find_class`` returns torch's storage classes themselves (only while torch.load drives it)."""


STAND_IN_RESULTS = [0]
"""How many :func:`load` calls returned a stand-in (a global or a call of one) since :func:`reset`."""


def reset(*, real_storage_classes: bool = False) -> None:
    REQUESTS.clear()
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
