"""What a TorchScript archive's ``code/`` runs when ``torch.jit.load`` reads it, found with ``ast``.

``torch.load(weights_only=False)`` hands an archive holding ``constants.pkl`` to
``torch.jit.load`` (torch/serialization.py ``_is_torchscript_zip``). Its
``ScriptModuleDeserializer`` (torch/csrc/jit/serialization/import.cpp) unpickles
``constants.pkl`` then ``data.pkl``; each object whose class has
``__getstate__``/``__setstate__`` is built by *running* ``__setstate__``. Classes
and functions come from ``code/<qualifier as a path>.py`` (import_source.cpp,
import_export_helpers.cpp), and compiling them also *evaluates* default
arguments and class-body constants (shown with marker files in
tests/differential/test_torchscript_vs_torch.py). Those three, and the special
methods (``with``, ``len``, operators) load-time code can call without naming them,
are the load-time entry points; the rest runs only when a method is called.

Nothing here executes or imports the code: sources are parsed with :mod:`ast`
and the calls are followed statically, over-approximating where a receiver's
class is unknown. Operations are recorded as neutral facts (``aten::save``,
``quantized::linear``, ``torch.classes.c10d.ProcessGroup``); rules/torchscript.py
judges them.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError, LimitExceeded
from ..limits import DEFAULT_LIMITS, Limits
from ..record import field, record
from .torchscript_index import (
    FunctionNode,
    Index,
    Unit,
    builtin_op,
    defaults_of,
    dotted,
    dotted_type,
    expr_type,
    local_types,
)
from .zipreader import ZipArchive

# Names the source importer binds (import_source.cpp ``env_``) or the compiler's builtins
# that denote an operation rather than plain Python syntax.
_PRINT = "prim::Print"
_CUSTOM_CLASS_PREFIX = ("__torch__", "torch", "classes")
_EXPLICIT_DUNDERS = frozenset({"__init__", "__getstate__", "__setstate__", "__new__"})
"""Special methods torch calls only by name (construction, saving, loading)."""
MAX_CODE_BYTES = 1 << 20
"""TorchScript source analysed per archive, all members together. Parsing and following cost
4-8 s and up to ~500 MB per MiB of hostile input (a shared 2-core machine); scripted
torchvision models carry at most 0.3 MiB (maskrcnn, ssdlite). Past it, the rest is reported
unreadable (a CK108 error), never skipped silently."""


@record
class ScriptOp:
    """One operation the archive's code can run.

    ``op`` is ``<namespace>::<name>`` for operators (``torch.X`` in the source is
    ``aten::X``, ``ops.ns.X`` is ``ns::X``, ``print`` is ``prim::Print``, a method
    call on a value of unknown type is the ``aten`` method of that name),
    ``torch.classes.<ns>.<Class>[.<method>]`` for torch custom classes, and
    ``torch`` / ``ops`` / ``ops.<ns>`` for a reference ckptlint cannot resolve.
    """

    op: str
    member: str
    line: int
    entry: str
    """The entry point it is reached from: a load-time one (``__setstate__``, a default
    argument, a class constant) or, for code that runs only when called, the method."""
    at_load: bool

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "member": self.member, "line": self.line, "entry": self.entry,
                "at_load": self.at_load}


@record(frozen=False)
class CodeFacts:
    """The result: entry points, operations and the code members ckptlint could not read."""

    entries: list[str] = field(default_factory=list)
    ops: list[ScriptOp] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"code_members": self.members, "entry_points": self.entries,
                "operations": [o.to_dict() for o in self.ops], "unreadable": self.unread}


def torchscript_code_facts(z: ZipArchive, prefix: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``FormatFacts.extra`` entry for a TorchScript archive (documented in docs/inventory-json.md)."""
    return {"torchscript_code": analyze_archive(z, prefix, limits).to_dict()}


def analyze_archive(z: ZipArchive, prefix: str, limits: Limits = DEFAULT_LIMITS) -> CodeFacts:
    code_dir = f"{prefix}/code/".lower()
    sources: list[tuple[str, str, bytes | None, str | None]] = []
    budget = min(MAX_CODE_BYTES, limits.max_inflated_bytes)
    for m in z.members:
        # miniz looks names up case-insensitively and may pick any of several same-named entries:
        # every entry that can be the one torch reads for a code/…/x.py path is analysed.
        low = m.name.lower()
        if not (low.startswith(code_dir) and low.endswith(".py")):
            continue
        qualifier = m.name[len(code_dir):-3].replace("/", ".")
        try:
            if m.size > budget:
                raise FormatError(f"{m.size} bytes of code past what ckptlint analyses "
                                  f"({MAX_CODE_BYTES >> 20} MiB of TorchScript source per archive)")
            data = z.read_member(m, limit=budget)
            budget -= len(data)
            sources.append((m.name, qualifier, data, None))
        except LimitExceeded:
            raise  # a whole-file bound: the file's own CK9xx finding names it
        except FormatError as e:
            sources.append((m.name, qualifier, None, str(e)))
    return analyze_sources(sources)


def analyze_sources(sources: list[tuple[str, str, bytes | None, str | None]]) -> CodeFacts:
    """``sources``: (member, qualifier, bytes or None, why unread). Pure: no archive needed."""
    facts = CodeFacts()
    index = Index()
    for member, qualifier, data, why in sorted(sources, key=lambda s: s[0]):
        facts.members.append(member)
        if data is None:
            facts.unread.append(f"{member}: {why}")
            continue
        try:
            tree = ast.parse(data.decode("utf-8"), filename=member)
            index.add_module(qualifier, member, tree)
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError) as e:
            facts.unread.append(f"{member}: not parseable as Python source ({type(e).__name__}: {_first_line(e)})")
    try:
        _Walker(index, facts).run()
    except (RecursionError, MemoryError) as e:  # nesting deeper than the walk follows: say so, never crash
        facts.unread.append(f"{facts.members[0] if facts.members else 'code/'}: analysis stopped "
                            f"({type(e).__name__}); the operations listed are incomplete")
    return facts


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:200]


class _Walker:
    """Follows calls from the load-time entry points, then scans everything else as call-time code."""

    def __init__(self, index: Index, facts: CodeFacts) -> None:
        self.index = index
        self.facts = facts
        self.reached: dict[int, str] = {}
        self.keep: list[Unit] = []
        """Units made here stay alive, so that their ids in ``reached`` stay unique."""
        self.seen_ops: set[tuple[str, str, bool]] = set()
        self.expanded: set[str] = set()
        """Method names already followed to every method of that name (each name once: linear time)."""

    def run(self) -> None:
        queue: deque[tuple[Unit, str]] = deque()
        for unit in self.index.units:
            for fn in _own_functions(unit):
                defaults = defaults_of(fn)
                if defaults:
                    entry = f"default argument of {unit.qualname}"
                    queue.append((Unit(unit.qualname, unit.member, list(defaults), unit.cls, unit.params), entry))
        for classes in self.index.classes.values():
            for cls in classes:
                setstate = cls.methods.get("__setstate__")
                if setstate is not None:
                    queue.appendleft((setstate, f"{cls.qualname}.__setstate__"))
                for name, expr in cls.constants:
                    queue.append((Unit(f"{cls.qualname}.{name}", cls.member, [expr], cls),
                                  f"class constant {cls.qualname}.{name}"))
        listed: set[str] = set()
        for unit, entry in queue:
            if entry not in listed and self._contains_code(unit):
                listed.add(entry)
                self.facts.entries.append(entry)
        if self.facts.entries:
            # Operators, `with`, len(), x[i], str() … call these without naming them.
            for name, methods in self.index.methods_by_name.items():
                if name.startswith("__") and name.endswith("__") and name not in _EXPLICIT_DUNDERS:
                    queue.extend((m, f"{m.qualname} (called implicitly by operators, with, len …)")
                                 for m in methods)
        self.keep.extend(unit for unit, _ in queue)
        while queue:
            unit, entry = queue.popleft()
            if id(unit) in self.reached:
                continue
            self.reached[id(unit)] = entry
            queue.extend((callee, entry) for callee in self._scan(unit, entry, at_load=True))
        for unit in self.index.units:
            if id(unit) not in self.reached:
                self._scan(unit, unit.qualname, at_load=False)

    @staticmethod
    def _contains_code(unit: Unit) -> bool:
        if unit.qualname.endswith(".__setstate__"):
            return True
        return any(isinstance(n, ast.Call | ast.Attribute) for n in unit.walked())

    def _record(self, op: str, unit: Unit, node: ast.AST, entry: str, at_load: bool) -> None:
        key = (op, entry if at_load else "", at_load)
        if key in self.seen_ops:
            return
        self.seen_ops.add(key)
        self.facts.ops.append(ScriptOp(op, unit.member, getattr(node, "lineno", 0), entry, at_load))

    def _scan(self, unit: Unit, entry: str, at_load: bool) -> list[Unit]:
        """Record the unit's operations; return the archive functions it calls or refers to."""
        nodes = unit.walked()
        inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        types = local_types(nodes, unit.params)
        out: dict[int, Unit] = {}
        for n in nodes:
            if isinstance(n, ast.Call) and dotted(n.func) == "getattr" and len(n.args) >= 2 \
                    and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str):
                # getattr(obj, "name") is obj.name (TorchScript wants a literal name)
                recv = expr_type(n.args[0], types, self.index)
                self._method(unit, n, n.args[1].value, recv, entry, at_load, False, out)
                continue
            if id(n) in inner or not isinstance(n, ast.Attribute | ast.Name):
                continue
            path = dotted(n)
            if path is None:
                if isinstance(n, ast.Attribute):
                    recv = expr_type(n.value, types, self.index)
                    self._method(unit, n, n.attr, recv, entry, at_load, id(n) in called, out)
                continue
            self._reference(unit, n, path, id(n) in called, types, entry, at_load, out)
        return list(out.values())

    def _reference(self, unit: Unit, n: ast.expr, path: str, is_call: bool, types: dict[str, str],
                   entry: str, at_load: bool, out: dict[int, Unit]) -> None:
        parts = path.split(".")
        head = parts[0]
        if head in types and head not in ("torch", "ops", "__torch__") and len(parts) > 1:
            recv = dotted_type(".".join(parts[:-1]), types, self.index)
            self._method(unit, n, parts[-1], recv, entry, at_load, is_call, out)
        elif head in ("torch", "ops"):
            self._record(builtin_op(parts), unit, n, entry, at_load)
        elif head == "print" and len(parts) == 1:
            self._record(_PRINT, unit, n, entry, at_load)
        elif head == "__torch__":
            self._qualified(unit, n, parts, is_call, entry, at_load, out)
        elif len(parts) > 1:
            self._method(unit, n, parts[-1], None, entry, at_load, is_call, out)  # a name of unknown type

    def _qualified(self, unit: Unit, n: ast.expr, parts: list[str], is_call: bool, entry: str,
                   at_load: bool, out: dict[int, Unit]) -> None:
        if tuple(parts[:3]) == _CUSTOM_CLASS_PREFIX:
            self._record("torch.classes." + ".".join(parts[3:]), unit, n, entry, at_load)
            return
        classes, functions, rest = self.index.resolve(".".join(parts))
        out.update((id(f), f) for f in functions)
        for cls in classes:
            method = rest.split(".")[0] if rest else ("__init__" if is_call else "")
            if method in cls.methods:
                out[id(cls.methods[method])] = cls.methods[method]

    def _method(self, unit: Unit, n: ast.expr, name: str, recv: str | None, entry: str, at_load: bool,
                is_call: bool, out: dict[int, Unit]) -> None:
        """``recv.name``, called or only referred to (``m = self.helper``; ``fork(self.helper)``)."""
        if recv is not None and recv.startswith("__torch__.torch.classes."):
            self._record(recv[len("__torch__."):] + "." + name, unit, n, entry, at_load)
            return
        classes = self.index.classes.get(recv.lower(), []) if recv else []
        if classes and not any(c.interface for c in classes):
            out.update((id(c.methods[name]), c.methods[name]) for c in classes if name in c.methods)
            return
        if is_call and not classes:
            self._record(f"aten::{name}", unit, n, entry, at_load)  # Tensor, list, str … methods are aten ops
        if (recv is None or "__torch__" in recv) and name not in self.expanded:
            # Unknown receiver, an interface or a Union/List/Dict of archive classes: any archive
            # method of that name may be the one.
            self.expanded.add(name)
            out.update((id(m), m) for m in self.index.methods_by_name.get(name, ()))


def _own_functions(unit: Unit) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The definitions whose defaults compile with the unit: its own and those nested in its body."""
    if unit.defn is not None:
        yield unit.defn
    for n in unit.walked():
        if isinstance(n, FunctionNode):
            yield n
