"""Sort every global a file references into allowed / data / model / dangerous / unknown, by exact name.

The categories answer "what happens if this file is loaded": *allowed* globals
are accepted by torch's weights_only unpickler; *data* ones are on the short
exact list of :mod:`.names` (each harmless, with the reason written down) that
weights_only refuses until allowlisted; *model* ones are classes at their
defining module that make the file a full-model pickle (re-save the state_dict);
*dangerous* ones can run code or touch the system; *unknown* is everything else.

How "model" is decided, without importing anything: the name must be one plain
identifier (a dotted name is an attribute chain that pickle resolves with
``getattr``, e.g. ``torchvision.models.resnet.torch.os.system``, never a class
at its module), and either the module's source on ``sys.path`` defines that
class at top level (:mod:`.modsource`), or, where no source can be read, the
file's own structure pickles the object with an ``nn.Module`` state or the name
is a CapWords class name in a model package. A name the source shows is *not*
a class there (an import, an alias, a function) is never a model.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any

from ..vocab import Category
from .allowlist import BLOCKLISTED_MODULES
from .modsource import defines_class
from .names import (
    DANGEROUS_ATTRIBUTES,
    DANGEROUS_NAMES,
    DATA,
    MODEL_PACKAGES,
    in_dangerous_module,
)

# Module path segments (after the first) that name a dangerous module reached as an attribute.
_DANGEROUS_MODULE_SEGMENTS = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "builtins", "__builtins__", "shutil", "socket", "ctypes",
    "importlib", "runpy", "pickle", "marshal",
})

SEVERITY_ORDER: tuple[Category, ...] = ("allowed", "data", "model", "unknown", "dangerous")
"""Categories from least to most severe (used when one name is read two ways)."""


def classify(qualname: str, module: str, *, allowed: frozenset[str],
             model_classes: Container[str] = frozenset()) -> Category:
    """The category of one global (see the module docstring).

    ``allowed`` is torch's allowlist plus what the user trusts; ``model_classes``
    the names the file pickles with an ``nn.Module``-like state."""
    name = qualname[len(module) + 1:] if qualname.startswith(module + ".") else qualname
    if is_dangerous(qualname, module, name):
        return "dangerous"
    if qualname in allowed:
        return "allowed"
    if qualname in DATA and "." not in name:
        return "data"
    if is_model(module, name, qualname in model_classes):
        return "model"
    return "unknown"


def is_dangerous(qualname: str, module: str, name: str) -> bool:
    """Exact dangerous names, every name of a dangerous module, and attribute chains through one."""
    if module in BLOCKLISTED_MODULES or qualname in DANGEROUS_NAMES or in_dangerous_module(module):
        return True
    if any(part in DANGEROUS_ATTRIBUTES for part in name.split(".")):
        return True
    return any(part in _DANGEROUS_MODULE_SEGMENTS for part in module.split(".")[1:])


def is_model(module: str, name: str, has_module_state: bool = False) -> bool:
    """A class at its defining module that the file pickles as a model (see the module docstring)."""
    if not name.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        return False  # a dotted name is an attribute chain; odd characters are no import path
    in_model_package = (module + ".").startswith(MODEL_PACKAGES)
    if not (in_model_package or has_module_state):
        return False
    defined = defines_class(module, name)
    if defined is False:
        return False
    if defined is True:
        return in_model_package or has_module_state
    return has_module_state or (in_model_package and name[:1].isupper() and not name.isupper())


def is_stdlib_module(module: str) -> bool:
    """Whether ``module`` belongs to the standard library (never a model class's home)."""
    return module.split(".")[0] in _STDLIB


def worst(categories: list[Category]) -> Category:
    """The most severe of several categories (one qualname read two ways)."""
    return max(categories, key=SEVERITY_ORDER.index)


def import_effect(module: str) -> str:
    """What importing ``module`` does, in a few words, for messages."""
    top = module.split(".")[0]
    if module == "builtins":
        return "importing builtins runs nothing (it is always loaded)"
    if top in _STDLIB:
        return f"importing {module} runs only standard-library code"
    if top in ("torch", "numpy"):
        return f"importing {module} runs {top}'s own code"
    if top == "__main__":
        return "__main__ is whatever script loads the file: the name resolves against that script"
    return f"importing {module} runs that package's top-level code"


def module_classes(structure: Any, limit: int = 100_000) -> frozenset[str]:
    """Classes whose pickled state looks like an ``nn.Module`` (``_parameters``/``_modules``).

    This is how user-defined model classes are recognised without importing them.
    """
    found: set[str] = set()
    for node in _objects(structure, limit):
        state = node.get("state")
        if isinstance(state, dict) and ("_modules" in state or "_parameters" in state):
            found.add(node["__object__"])
    return frozenset(found)


class ModelClasses:
    """:func:`module_classes` of a structure, walked when :func:`classify` first asks (a file whose globals are
    all allowed, dangerous or data never asks: the walk visits every node, two per tensor of a state_dict)."""

    __slots__ = ("names", "structure")

    def __init__(self, structure: Any) -> None:
        self.structure = structure
        self.names: frozenset[str] | None = None

    def __contains__(self, qualname: object) -> bool:
        if self.names is None:
            self.names = module_classes(self.structure)
        return qualname in self.names


def _objects(structure: Any, limit: int) -> Iterator[dict[str, Any]]:
    stack: list[Any] = [structure]
    seen = 0
    while stack and seen < limit:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            if isinstance(node.get("__object__"), str):
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(getattr(sys, "stdlib_module_names", ())) | {"__future__", "collections", "argparse"}


_STDLIB = _stdlib()
