"""Opcodes that add items to an object the stream built: DICT, APPEND(S), SETITEM(S), ADDITEMS.

Each mirrors ``do_append``, ``do_setitems`` and ``load_additems`` in CPython's
``Modules/_pickle.c``: nothing to add is a no-op whatever the target; a list, dict or set is
filled; anything else needs the method CPython looks up (``extend``/``append``, ``__setitem__``,
``add``), which plain values lack.
"""

from __future__ import annotations

from typing import Any

from .knownbuild import items_error
from .knowncalls import PLAIN
from .pickleops import ValueOps
from .stubs import Call, Global, Storage, TensorStub

BUILTIN_VALUES = PLAIN
"""Values the machine holds for real (not stand-ins): their behaviour is CPython's own."""


class ItemOps(ValueOps):
    """Mixin: the item-adding half of the opcode machine (see ``unpickler.StaticUnpickler``)."""

    def _op(self, opcode: str, obj: Any, detail: str = "") -> None:
        raise NotImplementedError  # StaticUnpickler records the operation

    def _on_global(self, target: Any, opcode: str) -> None:
        why = items_error(target, opcode)
        if why:
            raise self._fail(why)

    # -- containers that take items (the target is an object the stream built)
    def op_DICT(self) -> None:
        items = self._pop_mark()
        d: dict[Any, Any] = {}
        self._setitems(d, items, "DICT")
        self._stack.append(d)

    def op_APPEND(self) -> None:
        v = self._pop()
        self._append(self._top(), [v], "APPEND")

    def op_APPENDS(self) -> None:
        items = self._pop_mark()
        self._append(self._top(), items, "APPENDS")

    def _append(self, target: Any, items: list[Any], opcode: str) -> None:
        # load_append/do_append: nothing to add is a no-op whatever the target; a list is extended;
        # anything else needs .extend or .append
        if not items:
            return
        if type(target) is list:
            target.extend(items)
            return
        self._op(opcode, target)
        self._on_global(target, opcode)
        if isinstance(target, (Call, Global)):
            # a global may be any object: sys.path is a list (an attacker's favourite), so read on
            if isinstance(target, Call):
                target.items.extend(items)
        elif isinstance(target, bytearray):
            try:
                target.extend(items)
            except (TypeError, ValueError):
                raise self._fail("APPEND of a non-byte to a bytearray") from None
            except BufferError:
                raise self._fail("APPEND to a bytearray a memoryview pins (BufferError)") from None
        else:
            # no .extend or .append: builtin values, tensors, storages
            raise self._fail(f"APPEND to a {type(target).__name__}")

    def op_SETITEM(self) -> None:
        v = self._pop()
        k = self._pop()
        self._setitems(self._top(), [k, v], "SETITEM")

    def op_SETITEMS(self) -> None:
        items = self._pop_mark()
        self._setitems(self._top(), items, "SETITEMS")

    def _setitems(self, target: Any, items: list[Any], opcode: str) -> None:
        if not items:
            return  # do_setitems: nothing to set is a no-op whatever the target
        if len(items) % 2:
            raise self._fail("odd number of dict items")
        if type(target) is not dict and opcode != "DICT":
            self._op(opcode, target)
            self._on_global(target, opcode)
        if isinstance(target, dict):
            self._charge_hash(items[::2])
            try:
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            except TypeError:
                raise self._fail("unhashable dict key") from None
        elif isinstance(target, Call):
            target.dictitems.extend(zip(items[::2], items[1::2], strict=False))
        elif isinstance(target, (list, bytearray)):
            try:
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            except (TypeError, IndexError, ValueError, BufferError):
                raise self._fail(f"SETITEM on a {type(target).__name__}") from None
        elif not isinstance(target, (Storage, TensorStub, Global)):
            # a global may be any object with __setitem__ (os.environ, sys.modules): read on
            raise self._fail(f"SETITEM on a {type(target).__name__}")

    def op_ADDITEMS(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if not items:
            return  # load_additems: nothing to add is a no-op whatever the target
        if type(target) is not set:
            self._op("ADDITEMS", target)
            self._on_global(target, "ADDITEMS")
        if isinstance(target, set):
            target.update(self._hashable(items))
        elif isinstance(target, Call):
            target.items.extend(items)
        elif not isinstance(target, Global):
            raise self._fail(f"ADDITEMS on a {type(target).__name__}")
