"""Sort every global a file references into allowed / data / model / dangerous / unknown.

The categories answer "what happens if this file is loaded": *allowed* globals
are accepted by torch's weights_only unpickler; *data* ones run no code of
concern but weights_only refuses them (allowlist them); *model* ones make the
file a full-model pickle (re-save the state_dict); *dangerous* ones can run code
or touch the system; *unknown* ones run their module's code on import, so they
are unsafe until a user trusts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .allowlist import BLOCKLISTED_MODULES

DANGEROUS_MODULES = frozenset("""
os posix nt sys subprocess runpy importlib pickle _pickle pickletools dill cloudpickle joblib
shutil socket webbrowser pty code codeop ctypes marshal multiprocessing signal asyncio http urllib
urllib2 urllib3 requests httplib ftplib smtplib telnetlib tempfile shelve dbm zipimport pip
setuptools distutils commands popen2 platform pdb bdb trace timeit doctest venv ensurepip imp
copyreg copy_reg types _io io _posixsubprocess threading _thread gc inspect builtins.exec
ssl select selectors mmap resource fcntl termios tty ptyprocess pexpect sqlite3 xmlrpc
""".split())

DANGEROUS_NAMES = frozenset("""
builtins.eval builtins.exec builtins.compile builtins.__import__ builtins.getattr builtins.setattr
builtins.delattr builtins.open builtins.breakpoint builtins.input builtins.globals builtins.locals
builtins.vars builtins.help builtins.exit builtins.quit builtins.execfile builtins.apply
builtins.reload builtins.file builtins.type

functools.partial functools.partialmethod functools.reduce functools.wraps
operator.attrgetter operator.methodcaller operator.itemgetter operator.call operator.getitem
operator.setitem operator.delitem
torch.load torch.serialization.load torch.jit.load torch.hub.load torch.hub.load_state_dict_from_url
torch.package.PackageImporter torch._C._jit_pass_inline torch.ops
numpy.load numpy.lib.npyio.load numpy.fromfile numpy.loadtxt numpy.genfromtxt numpy.save
numpy.testing._private.utils.runstring numpy.f2py
""".split())

# Callables reached through "ordinary" modules that still run arbitrary code.
DANGEROUS_PREFIXES = ("torch._C.", "torch.ops.", "torch.hub.", "numpy.distutils.", "numpy.f2py.",
                      "importlib.", "multiprocessing.", "asyncio.", "http.", "urllib.", "xmlrpc.",
                      "os.", "sys.", "subprocess.", "ctypes.", "email.", "logging.config.",
                      "distutils.", "setuptools.", "pip.", "IPython.", "_pytest.", "pytest.")

DATA_NAMES = frozenset("""
numpy.ndarray numpy.dtype numpy.core.multiarray._reconstruct numpy._core.multiarray._reconstruct
numpy.core.multiarray.scalar numpy._core.multiarray.scalar
numpy.random._pickle.__randomstate_ctor numpy.random._pickle.__bit_generator_ctor
numpy.random._pickle.__generator_ctor numpy.random.mtrand.RandomState
argparse.Namespace collections.defaultdict collections.deque collections.OrderedDict
datetime.datetime datetime.date datetime.time datetime.timedelta datetime.timezone
pathlib.Path pathlib.PosixPath pathlib.WindowsPath pathlib.PurePath pathlib.PurePosixPath
pathlib.PureWindowsPath decimal.Decimal fractions.Fraction uuid.UUID
builtins.slice builtins.range builtins.frozenset builtins.complex builtins.bytes builtins.bytearray
builtins.int builtins.float builtins.str builtins.bool builtins.list builtins.dict builtins.tuple
builtins.set builtins.object
omegaconf.listconfig.ListConfig omegaconf.dictconfig.DictConfig omegaconf.base.ContainerMetadata
omegaconf.base.Metadata omegaconf.nodes.AnyNode omegaconf.nodes.StringNode omegaconf.nodes.IntegerNode
omegaconf.nodes.FloatNode omegaconf.nodes.BooleanNode omegaconf.nodes.ValueNode typing.Any
torch.torch_version.TorchVersion
""".split())

DATA_PREFIXES = ("numpy.dtypes.",)

MODEL_PREFIXES = ("torch.nn.modules.", "torchvision.models.", "torchvision.ops.", "__torch__.",
                  "timm.models.", "transformers.models.")


# Names that, reached as an attribute of any module (``torch.serialization.os``), are the
# dangerous module or callable itself.
DANGEROUS_ATTRIBUTES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pty", "ctypes", "importlib", "runpy",
    "pickle", "_pickle", "marshal", "builtins", "__builtins__", "__import__", "eval", "exec", "compile",
    "system", "popen", "Popen", "getattr", "open", "breakpoint",
})


def classify(qualname: str, module: str, *, allowed: frozenset[str],
             model_classes: frozenset[str] = frozenset()) -> str:
    """The category of one global (see the module docstring)."""
    if module in BLOCKLISTED_MODULES or qualname in DANGEROUS_NAMES:
        return "dangerous"
    name = qualname[len(module) + 1:] if qualname.startswith(module + ".") else qualname
    if qualname not in allowed and any(part in DANGEROUS_ATTRIBUTES for part in name.split(".")):
        return "dangerous"
    if qualname in allowed:
        return "allowed"
    if module in DANGEROUS_MODULES or module.split(".")[0] in DANGEROUS_MODULES:
        return "dangerous"
    if qualname.startswith(DANGEROUS_PREFIXES):
        return "dangerous"
    if qualname in model_classes or qualname.startswith(MODEL_PREFIXES) or qualname == "torch.nn.Module":
        return "model"
    if qualname in DATA_NAMES or qualname.startswith(DATA_PREFIXES):
        return "data"
    if module == "numpy" and qualname.split(".")[-1].islower():
        return "data"  # numpy scalar types: numpy.float64, numpy.int32 ...
    return "unknown"


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
