"""What torch's weights_only path accepts, written down once (torch 2.6 - 2.14).

Each constant mirrors one check in ``torch/_weights_only_unpickler.py`` (``Unpickler.load``)
or ``torch/serialization.py`` (``_load``); tests/differential/test_safety_vs_torch.py
compares them with the installed torch's own tables and behaviour. The pickle
reader in ``formats/`` records neutral facts (opcodes, globals as written, the
targets of NEWOBJ/BUILD/APPEND/SETITEM, record sizes); this module judges them.
"""

from __future__ import annotations

# Unpickler.load: every other opcode is "Unsupported operand".
WEIGHTS_ONLY_OPCODES = frozenset({
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
    "LONG_BINPUT", "LONG1", "PROTO", "STOP",
})

# torch._utils.IMPORT_MAPPING / NAME_MAPPING: ``_read_global_instruction`` applies them to every GLOBAL,
# whatever the protocol (CPython's own fix_imports applies its larger table only below protocol 3).
TORCH_IMPORT_MAPPING: dict[str, str] = {
    "__builtin__": "builtins", "copy_reg": "copyreg", "Queue": "queue", "repr": "reprlib",
    "_abcoll": "collections.abc", "UserDict": "collections", "UserList": "collections",
    "UserString": "collections", "whichdb": "dbm", "StringIO": "io", "cStringIO": "io",
}
_EXCEPTIONS = (
    "ArithmeticError AssertionError AttributeError BaseException BufferError BytesWarning DeprecationWarning "
    "EOFError EnvironmentError Exception FloatingPointError FutureWarning GeneratorExit IOError ImportError "
    "ImportWarning IndentationError IndexError KeyError KeyboardInterrupt LookupError MemoryError NameError "
    "NotImplementedError OSError OverflowError PendingDeprecationWarning ReferenceError RuntimeError "
    "RuntimeWarning StopIteration SyntaxError SyntaxWarning SystemError SystemExit TabError TypeError "
    "UnboundLocalError UnicodeDecodeError UnicodeEncodeError UnicodeError UnicodeTranslateError "
    "UnicodeWarning UserWarning ValueError Warning ZeroDivisionError"
)
TORCH_NAME_MAPPING: dict[tuple[str, str], tuple[str, str]] = {
    ("__builtin__", "xrange"): ("builtins", "range"), ("__builtin__", "reduce"): ("functools", "reduce"),
    ("__builtin__", "intern"): ("sys", "intern"), ("__builtin__", "unichr"): ("builtins", "chr"),
    ("__builtin__", "unicode"): ("builtins", "str"), ("__builtin__", "long"): ("builtins", "int"),
    ("itertools", "izip"): ("builtins", "zip"), ("itertools", "imap"): ("builtins", "map"),
    ("itertools", "ifilter"): ("builtins", "filter"), ("itertools", "ifilterfalse"): ("itertools", "filterfalse"),
    ("itertools", "izip_longest"): ("itertools", "zip_longest"),
    ("UserDict", "IterableUserDict"): ("collections", "UserDict"),
    ("UserList", "UserList"): ("collections", "UserList"),
    ("UserString", "UserString"): ("collections", "UserString"), ("__builtin__", "basestring"): ("builtins", "str"),
    ("exceptions", "StandardError"): ("builtins", "Exception"), ("UserDict", "UserDict"): ("collections", "UserDict"),
    **{("exceptions", e): ("builtins", e) for e in _EXCEPTIONS.split()},
}

# Unpickler.load, BUILD: these types are built without being allowlisted themselves.
BUILD_ALWAYS = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter", "collections.OrderedDict"})
# NEWOBJ: nn.Parameter is special-cased; other classes must be allowlisted.
NEWOBJ_ALWAYS = frozenset({"torch.nn.parameter.Parameter"})
# _check_set_item_target: the exact types SETITEM(S) may target (no subclasses, even allowlisted).
SETITEM_TYPES = frozenset({"builtins.dict", "collections.OrderedDict", "collections.Counter"})
# _check_append_target: a plain list, or a list subclass the *user* allowlisted.
APPEND_TYPES = frozenset({"builtins.list"})
# _load: the byteorder record must be exactly one of these (no strip).
BYTEORDER_VALUES = ("little", "big")
# torch.load passes encoding="utf-8" by default: SHORT_BINSTRING bytes are decoded strictly.


def torch_global_name(module: str, name: str) -> str:
    """The full path torch's weights_only unpickler looks up for ``GLOBAL module name``."""
    if (module, name) in TORCH_NAME_MAPPING:
        module, name = TORCH_NAME_MAPPING[(module, name)]
    elif module in TORCH_IMPORT_MAPPING:
        module = TORCH_IMPORT_MAPPING[module]
    return f"{module}.{name}"


def torch_name_as_written(written: str, fallback: str) -> str:
    """:func:`torch_global_name` for a ``module.name`` string whose split point is not known.

    The reader keeps the spelling a stream used (``__builtin__.set``); torch maps it by
    module or by (module, name) pair, so try each split point that a mapping knows."""
    parts = written.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module, name = ".".join(parts[:i]), ".".join(parts[i:])
        if (module, name) in TORCH_NAME_MAPPING or module in TORCH_IMPORT_MAPPING:
            return torch_global_name(module, name)
    return written if written else fallback


def allowed_kind(name: str) -> str:
    """What an allowlisted name stands for in torch's table: ``class``, ``function`` or ``value``.

    NEWOBJ needs a class (``cls.__new__``), REDUCE something callable; dtypes, qschemes and the
    legacy ``torch.<T>Storage`` names (torch maps them to ``StorageType`` instances) are neither.
    Names users allowlist are assumed to be classes. tests/differential compares every entry of
    torch's own table with the live objects."""
    module, _, attr = name.rpartition(".")
    if name in _FUNCTIONS or attr.startswith("_rebuild"):
        return "function"
    if module in ("torch", "torch.cuda") and attr.endswith("Storage"):
        return "value"
    if module == "torch" and (attr.startswith("per_") or (attr[:1].islower() and attr != "device")):
        return "value"
    return "class"


_FUNCTIONS = frozenset({"_codecs.encode", "torch.serialization._get_layout"})
