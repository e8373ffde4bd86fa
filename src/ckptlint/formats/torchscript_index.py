"""The source model behind torchscript_code.py: classes, functions and names in ``code/``.

Python's ``ast`` stands in for TorchScript's parser (import_source.cpp); names resolve the way
the source importer binds them (``torch`` is ``aten``, ``ops.<ns>``, ``__torch__.<qualifier>``),
and types come from what the code declares (annotations, ``__new__``/``unchecked_cast``).
"""

from __future__ import annotations

import ast

from ..record import field, record

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@record(frozen=False)
class Unit:
    """A function or method (or a load-time expression group) to scan."""

    qualname: str
    member: str
    nodes: list[ast.AST]
    cls: ClassInfo | None = None
    params: dict[str, str] = field(default_factory=dict)
    defn: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    """The definition, whose default arguments compile (and run) when the class or function does."""
    _walked: list[ast.AST] | None = None

    def walked(self) -> list[ast.AST]:
        """Every node under the unit's roots (computed once: the walk dominates the analysis)."""
        if self._walked is None:
            self._walked = [n for root in self.nodes for n in ast.walk(root)]
        return self._walked


@record(frozen=False)
class ClassInfo:
    """One TorchScript class of the archive's code: its methods."""

    qualname: str
    member: str
    methods: dict[str, Unit] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)
    """Attribute annotations (``p : __torch__.Payload``) as source text."""
    interface: bool = False
    """``class X(Interface)``/``(ModuleInterface)``: a call on it runs whichever class implements it."""
    constants: list[tuple[str, ast.AST]] = field(default_factory=list)
    """Class-body assignments (``x : Final[int] = 3``): torch evaluates them when it defines the class."""


class Index:
    """Classes and functions by lower-cased qualified name (file lookup is case-insensitive)."""

    def __init__(self) -> None:
        self.classes: dict[str, list[ClassInfo]] = {}
        self.functions: dict[str, list[Unit]] = {}
        self.modules: set[str] = set()
        self.units: list[Unit] = []
        self.methods_by_name: dict[str, list[Unit]] = {}

    def add_module(self, qualifier: str, member: str, tree: ast.Module) -> None:
        self.modules.add(qualifier.lower())
        for stmt in tree.body:
            if isinstance(stmt, ast.ClassDef):
                self._add_class(f"{qualifier}.{stmt.name}", member, stmt)
            elif isinstance(stmt, FunctionNode):
                unit = function_unit(f"{qualifier}.{stmt.name}", member, stmt, None)
                self.functions.setdefault(unit.qualname.lower(), []).append(unit)
                self.units.append(unit)
            else:
                # Not something torch's importer accepts at top level (it refuses the file), but a
                # call here would be scanned all the same.
                self.units.append(Unit(f"{qualifier}:{getattr(stmt, 'lineno', 0)}", member, [stmt]))

    def _add_class(self, qualname: str, member: str, node: ast.ClassDef) -> None:
        cls = ClassInfo(qualname, member)
        cls.interface = any(isinstance(b, ast.Name) and b.id in ("Interface", "ModuleInterface") for b in node.bases)
        for stmt in node.body:
            if isinstance(stmt, FunctionNode):
                unit = function_unit(f"{qualname}.{stmt.name}", member, stmt, cls)
                cls.methods[stmt.name] = unit
                self.methods_by_name.setdefault(stmt.name, []).append(unit)
                self.units.append(unit)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                cls.attrs[stmt.target.id] = ast.unparse(stmt.annotation)
                if stmt.value is not None:
                    cls.constants.append((stmt.target.id, stmt.value))
            elif isinstance(stmt, ast.Assign) and _is_annotation_entry(stmt.targets[0]):
                cls.attrs[ast.unparse(stmt.targets[0])] = ast.unparse(stmt.value)  # a type, never evaluated
            elif isinstance(stmt, ast.Assign):
                name = stmt.targets[0].id if isinstance(stmt.targets[0], ast.Name) else "?"
                cls.constants.append((name, stmt.value))
            elif not isinstance(stmt, ast.Pass | ast.Expr):
                cls.constants.append(("?", stmt))
        for deco in node.decorator_list:
            cls.constants.append(("@decorator", deco))
        self.classes.setdefault(qualname.lower(), []).append(cls)

    def resolve(self, dotted: str) -> tuple[list[ClassInfo], list[Unit], str]:
        """The classes or functions a dotted ``__torch__…`` name denotes, and what is left over."""
        parts = dotted.split(".")
        for k in range(len(parts), 1, -1):
            head = ".".join(parts[:k]).lower()
            rest = ".".join(parts[k:])
            if head in self.classes:
                return self.classes[head], [], rest
            if head in self.functions:
                return [], self.functions[head], rest
        return [], [], ""


def _is_annotation_entry(target: ast.expr) -> bool:
    """``__annotations__["0"] = T``: an attribute whose name is no identifier (import_source.cpp TK_SUBSCRIPT)."""
    return (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
            and target.value.id == "__annotations__" and isinstance(target.slice, ast.Constant))


def function_unit(qualname: str, member: str, node: ast.FunctionDef | ast.AsyncFunctionDef,
                   cls: ClassInfo | None) -> Unit:
    params: dict[str, str] = {}
    for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
        if a.annotation is not None:
            params[a.arg] = ast.unparse(a.annotation)
    if cls is not None and node.args.args:
        params.setdefault(node.args.args[0].arg, cls.qualname)
    return Unit(qualname, member, list(node.body), cls, params, node)


def defaults_of(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    return [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None), *node.decorator_list]


def dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def builtin_op(parts: list[str]) -> str:
    """``torch.X`` is ``aten::X`` and ``ops.ns.X`` is ``ns::X``; ``.autograd`` anywhere switches to ``aten``.

    import_source.cpp binds ``torch`` to ``BuiltinModule("aten")`` and ``ops.<ns>`` to
    ``BuiltinModule(ns)``; ``BuiltinModule::attr`` (sugared_value.cpp) answers ``autograd`` with
    the ``aten`` module again, so ``torch.autograd.save`` is ``aten::save``.
    """
    ns = "aten" if parts[0] == "torch" else ""
    rest = parts[1:]
    if parts[0] == "ops":
        if not rest:
            return "ops"
        ns, rest = rest[0], rest[1:]
    for part in rest:
        if part == "autograd":
            ns = "aten"
            continue
        return f"{ns}::{part}"
    return ".".join(parts)  # a module, not an operator: an alias ckptlint cannot follow


def local_types(nodes: list[ast.AST], params: dict[str, str]) -> dict[str, str]:
    """Flow-insensitive local types: a name bound two different ways is dropped (unknown).

    Only ``x = <typed expr>`` and ``x : T = …`` give a type; any other binding of the name
    (``for``, ``with … as``, unpacking, a nested function's parameter, ``:=`` …) makes it
    unknown, so a receiver is never resolved to one class when it may hold another.
    """
    types = dict(params)
    clash: set[str] = set()
    typed_targets: set[int] = set()
    for n in nodes:
        target: ast.expr | None = None
        value: ast.expr | None = None
        typ: str | None = None
        if isinstance(n, ast.AnnAssign):
            target, typ = n.target, ast.unparse(n.annotation)
        elif isinstance(n, ast.Assign) and len(n.targets) == 1:
            target, value = n.targets[0], n.value
        if not isinstance(target, ast.Name):
            continue
        typed_targets.add(id(target))
        if typ is None and value is not None:
            typ = value_type(value)
        if typ is None or types.get(target.id, typ) != typ:
            clash.add(target.id)
        else:
            types[target.id] = typ
    for n in nodes:
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in typed_targets:
            clash.add(n.id)
        elif isinstance(n, ast.arg):
            clash.add(n.arg)  # a nested function's parameter (the unit's own are not among its nodes)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            clash.add(n.name)
    for name in clash:
        types.pop(name, None)
    return types


def value_type(value: ast.expr) -> str | None:
    """The type of ``__torch__.C.__new__(__torch__.C)``, ``__torch__.C(...)``, ``unchecked_cast(T, x)``…"""
    if isinstance(value, ast.Call):
        func = dotted(value.func)
        if func in ("unchecked_cast", "annotate") and value.args:
            return ast.unparse(value.args[0])
        if func and func.startswith("__torch__."):
            return func[: -len(".__new__")] if func.endswith(".__new__") else func
    if isinstance(value, ast.Attribute | ast.Name):
        return "=" + ast.unparse(value)  # resolved lazily against attributes (see dotted_type)
    return None


def dotted_type(dotted: str, local_types: dict[str, str], index: Index, depth: int = 0) -> str | None:
    parts = dotted.split(".")
    typ = local_types.get(parts[0])
    if typ is not None and typ.startswith("=") and depth < 8:
        typ = dotted_type(typ[1:], local_types, index, depth + 1)
    for attr in parts[1:]:
        if typ is None:
            return None
        found = {c.attrs.get(attr) for c in index.classes.get(typ.lower(), [])}
        typ = found.pop() if len(found) == 1 else None  # same-named copies that disagree: unknown
    if typ is not None and typ.startswith("Optional[") and typ.endswith("]"):
        typ = typ[len("Optional["):-1]
    return typ


def expr_type(node: ast.expr, local_types: dict[str, str], index: Index) -> str | None:
    if isinstance(node, ast.Call) and dotted(node.func) in ("unchecked_cast", "annotate") and node.args:
        return ast.unparse(node.args[0])
    path = dotted(node)
    return dotted_type(path, local_types, index) if path else None
