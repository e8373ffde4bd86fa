"""Exact global names: the short "data" list (each with why it is harmless) and the dangerous ones.

No prefixes, no case rules: a name is on a list or it is not. ``numpy.savetxt``
is not data because it is lower case in ``numpy``; ``numpy.float64`` is data
because it is written here. The data list is the only source of
``add_safe_globals`` advice, so every entry says why it cannot touch files,
processes, raw memory or code. Entries were checked against the objects
(numpy 2.4, CPython 3.11) and, for numpy, against what torch's own docs and
users allowlist for ``weights_only`` (``_reconstruct``, ``ndarray``, ``dtype``,
the dtype classes).
"""

from __future__ import annotations


def words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text`` (long name tables stay readable)."""
    return tuple(text.split())


_RECONSTRUCT = ("builds an empty ndarray of the pickled shape and dtype (ndarray.__new__): "
                "no I/O, no pointer, no code")
_SCALAR = "builds a numpy scalar of a dtype from its raw bytes (a copy): no I/O, no code"
_DTYPE_CLASS = ("a numpy dtype class: numpy >= 1.25 pickles BUILD on it, which only sets the byte order "
                "and field layout")
_SCALAR_TYPE = "a numpy scalar type object (a stored type, e.g. a dtype setting): no I/O, no code"
_ABC = "an abstract base class: it only answers isinstance checks and cannot be instantiated"
_DCP = "a DCP metadata dataclass (field values only: names, sizes, offsets; no __setstate__)"
_FEATURE = "a __future__ feature record (compiler flags): importing __future__ defines constants only"

DATA: dict[str, str] = {
    # numpy arrays, dtypes and scalars, as numpy 1.x (numpy.core) and 2.x (numpy._core) pickle them
    "numpy.core.multiarray._reconstruct": _RECONSTRUCT,
    "numpy._core.multiarray._reconstruct": _RECONSTRUCT,
    "numpy.ndarray": "the array type; its __setstate__ copies the pickled bytes into the array's own buffer",
    "numpy.dtype": "an element-type description; constructing one parses a type code",
    "numpy.core.multiarray.scalar": _SCALAR,
    "numpy._core.multiarray.scalar": _SCALAR,
    **{f"numpy.dtypes.{c}DType": _DTYPE_CLASS for c in words(
        "Bool Int8 Int16 Int32 Int64 UInt8 UInt16 UInt32 UInt64 Byte UByte Short UShort Int UInt Long "
        "ULong LongLong ULongLong Float16 Float32 Float64 LongDouble Complex64 Complex128 CLongDouble "
        "Str Bytes DateTime64 TimeDelta64")},
    **{f"numpy.{t}": _SCALAR_TYPE for t in words(
        "bool bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
        "complex64 complex128 longdouble intp uintp")},
    # training-script values
    "argparse.Namespace": "a plain attribute bag: NEWOBJ and BUILD only set its attributes",
    "collections.defaultdict": ("a dict with a default factory; the factory is another global that must "
                                "itself be allowlisted, and is only called on a missing key after loading"),
    "collections.deque": "a list-like container",
    "datetime.datetime": "a date/time value built from numbers and bytes",
    "datetime.date": "a date value built from bytes",
    "datetime.time": "a time value built from bytes",
    "datetime.timedelta": "a duration value built from numbers",
    "datetime.timezone": "a fixed UTC offset value",
    "decimal.Decimal": "a decimal number parsed from a string",
    "fractions.Fraction": "a rational number built from two integers or a string",
    "uuid.UUID": "a 128-bit identifier value",
    "pathlib.PurePosixPath": "a path string; constructing it does not touch the file system",
    "pathlib.PureWindowsPath": "a path string; constructing it does not touch the file system",
    "pathlib.PosixPath": "a path string; constructing it does not touch the file system",
    "pathlib.WindowsPath": "a path string; constructing it does not touch the file system",
    "pathlib.Path": "a path string; constructing it does not touch the file system",
    "torch.torch_version.TorchVersion": "a str subclass holding a version string",
    # torch.distributed.checkpoint (DCP) `.metadata`: dataclasses of names, sizes and offsets
    **{f"torch.distributed.checkpoint.metadata.{c}": _DCP for c in words(
        "Metadata TensorStorageMetadata ChunkStorageMetadata BytesStorageMetadata MetadataIndex StorageMeta")},
    "torch.distributed.checkpoint.metadata.TensorProperties": (
        "a DCP dataclass of a tensor's dtype/layout flags; its __setstate__ only maps an enum to a memory format"),
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING": "an Enum of three memory-format codes",
    "torch.distributed.checkpoint.filesystem._StorageInfo": _DCP,
    "typing.Any": "a typing marker object",
    # builtins: types and pure functions (importing builtins runs nothing: it is always loaded)
    **{f"builtins.{t}": "a built-in value type" for t in words(
        "int float bool str bytes tuple list dict frozenset slice range object")},
    **{f"builtins.{f}": "a pure built-in function of its arguments: no I/O, no code" for f in words(
        "len abs round chr ord")},
    # names people import for annotations and checks
    **{f"__future__.{n}": _FEATURE for n in words(
        "nested_scopes generators division absolute_import with_statement print_function unicode_literals "
        "barry_as_FLUFL generator_stop annotations")},
    **{f"collections.abc.{n}": _ABC for n in words(
        "Hashable Iterable Iterator Reversible Sized Container Collection Set MutableSet Mapping "
        "MutableMapping Sequence MutableSequence")},
}

# Modules (and their submodules) whose names can run code, start processes, open files or sockets,
# or read and write memory: every global in them is dangerous.
DANGEROUS_MODULES = frozenset(words("""
os posix nt sys subprocess _posixsubprocess runpy importlib pickle _pickle pickletools dill cloudpickle
joblib shutil socket _socket webbrowser pty code codeop ctypes _ctypes marshal multiprocessing signal asyncio
http urllib urllib2 urllib3 requests httplib ftplib smtplib telnetlib tempfile shelve dbm zipimport pip
setuptools distutils commands popen2 platform pdb bdb trace timeit doctest venv ensurepip imp copyreg
copy_reg types _io io threading _thread gc inspect ssl select selectors mmap resource fcntl termios tty
ptyprocess pexpect sqlite3 xmlrpc posixpath ntpath genericpath glob fileinput linecache zipfile tarfile
gzip bz2 lzma sysconfig site builtins.exec
numpy.testing numpy.ctypeslib numpy.f2py numpy.distutils numpy.lib.npyio numpy.lib._npyio_impl
numpy.lib.format numpy.lib._datasource numpy.core.memmap numpy._core.memmap numpy.lib.utils
torch._C torch.ops torch.hub torch.package torch.utils.cpp_extension torch._dynamo torch._inductor
"""))

# Single names that can run code or touch the system, in otherwise ordinary modules.
DANGEROUS_NAMES = frozenset(words("""
builtins.eval builtins.exec builtins.compile builtins.__import__ builtins.getattr builtins.setattr
builtins.delattr builtins.open builtins.breakpoint builtins.input builtins.globals builtins.locals
builtins.vars builtins.help builtins.exit builtins.quit builtins.execfile builtins.apply builtins.print
builtins.reload builtins.file builtins.type builtins.memoryview builtins.classmethod builtins.staticmethod
builtins.property builtins.super builtins.__build_class__ builtins.map builtins.filter builtins.iter
builtins.next builtins.sorted
functools.partial functools.partialmethod functools.reduce functools.wraps functools.update_wrapper
functools.cached_property functools.singledispatch
operator.attrgetter operator.methodcaller operator.itemgetter operator.call operator.getitem
operator.setitem operator.delitem
collections.namedtuple
torch.load torch.save torch.serialization.load torch.serialization.save torch.serialization._load
torch.serialization._legacy_load torch.jit.load torch.jit.save torch.jit._serialization.load
torch.from_file torch.storage._load_from_bytes torch._weights_only_unpickler.load
torch.serialization.add_safe_globals torch.serialization.safe_globals
torch._utils._rebuild_device_tensor_from_numpy_unsafe torch.classes torch.library.Library
numpy.load numpy.save numpy.savez numpy.savez_compressed numpy.savetxt numpy.loadtxt numpy.genfromtxt
numpy.fromfile numpy.fromregex numpy.memmap numpy.DataSource numpy.loads numpy.frompyfunc numpy.vectorize
numpy.piecewise numpy.apply_along_axis numpy.apply_over_axes numpy.ctypeslib
pandas.read_pickle pandas.io.pickle.read_pickle
"""))

# Names that, reached as an attribute of any module or object (``torch.serialization.os``,
# ``resnet.torch.os.system``), are a dangerous module or callable themselves.
DANGEROUS_ATTRIBUTES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pty", "ctypes", "importlib", "runpy",
    "pickle", "_pickle", "marshal", "builtins", "__builtins__", "__import__", "eval", "exec", "compile",
    "system", "popen", "Popen", "getattr", "setattr", "open", "breakpoint", "__globals__", "__code__",
    "__subclasses__", "__reduce__", "__reduce_ex__", "__getattribute__", "__class__", "__dict__",
    "__init__", "__call__", "spawn", "execv", "execve", "fork", "load", "loads", "save", "savetxt",
    "tofile", "memmap", "write_text", "write_bytes", "unlink", "rmdir", "remove", "chmod",
})

# Packages whose classes are model layers when a file pickles them at their defining module.
MODEL_PACKAGES = ("torch.nn.modules.", "torch.ao.nn.", "torch.nn.quantized.", "torchvision.models.",
                  "torchvision.ops.", "timm.models.", "timm.layers.", "transformers.models.", "__torch__.")


def in_dangerous_module(module: str) -> bool:
    """``module`` is one of DANGEROUS_MODULES or a submodule of one (``os.path``, ``numpy.testing._private``)."""
    parts = module.split(".")
    return any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1))
