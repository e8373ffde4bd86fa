"""torch's weights_only allowlist, mirrored so that safety checks need no torch import.

The table is torch 2.14's ``_get_allowed_globals()``; entries added after 2.6 carry
the release that added them. ``tests/differential`` asserts the table equals the
installed torch's own list, so the two cannot drift unnoticed. When torch is
already imported in this process, :func:`allowed_globals` reads torch's live
list instead (which includes the process's ``add_safe_globals`` entries).
"""

from __future__ import annotations

import sys
from functools import cache

from .names import words

NEWEST_SUPPORTED_TORCH = (2, 14)

# Modules torch's unpickler refuses even when allowlisted.
BLOCKLISTED_MODULES = frozenset({"sys", "os", "posix", "nt"})

_BASE = """
_codecs.encode builtins.bytearray builtins.complex builtins.set collections.Counter
collections.OrderedDict torch.Size torch.Tensor torch.device torch.nn.parameter.Parameter
torch.serialization._get_layout torch._tensor._rebuild_from_type_v2
torch._utils._rebuild_device_tensor_from_cpu_tensor torch._utils._rebuild_device_tensor_from_numpy
torch._utils._rebuild_meta_tensor_no_storage torch._utils._rebuild_nested_tensor
torch._utils._rebuild_parameter torch._utils._rebuild_parameter_with_state torch._utils._rebuild_qtensor
torch._utils._rebuild_sparse_tensor torch._utils._rebuild_tensor torch._utils._rebuild_tensor_v2
torch._utils._rebuild_tensor_v3 torch._utils._rebuild_wrapper_subclass
torch.storage.TypedStorage torch.storage.UntypedStorage
torch.per_channel_affine torch.per_channel_affine_float_qparams torch.per_channel_symmetric
torch.per_tensor_affine torch.per_tensor_symmetric
torch.bfloat16 torch.bits16 torch.bits1x8 torch.bits2x4 torch.bits4x2 torch.bits8 torch.bool
torch.complex128 torch.complex32 torch.complex64 torch.float16 torch.float32 torch.float64
torch.float8_e4m3fn torch.float8_e4m3fnuz torch.float8_e5m2 torch.float8_e5m2fnuz
torch.int16 torch.int32 torch.int64 torch.int8 torch.uint8 torch.uint16 torch.uint32 torch.uint64
torch.qint32 torch.qint8 torch.quint2x4 torch.quint4x2 torch.quint8
"""

_STORAGE_NAMES = words("""BFloat16 Bool Byte Char ComplexDouble ComplexFloat Double Float Half Int Long
QInt32 QInt8 QUInt2x4 QUInt4x2 QUInt8 Short""")
_CUDA_STORAGE_NAMES = [n for n in _STORAGE_NAMES if not n.startswith("Q")]
_TENSOR_NAMES = words("BFloat16 Bool Byte Char Double Float Half Int Long Short")
_SPARSE_TENSOR_NAMES = words("BFloat16 Byte Char Double Float Half Int Long Short")

_ADDED: dict[tuple[int, int], list[str]] = {
    (2, 7): ["torch.float8_e8m0fnu"]
    + [f"torch.uint{i}" for i in range(1, 8)] + [f"torch.int{i}" for i in range(1, 8)],
    (2, 8): ["torch.float4_e2m1fn_x2"],
    (2, 14): ["torch.bcomplex32"],
}


@cache
def static_allowed_globals(version: tuple[int, int] = NEWEST_SUPPORTED_TORCH) -> frozenset[str]:
    names = set(_BASE.split())
    names.update(f"torch.{n}Storage" for n in _STORAGE_NAMES)
    names.update(f"torch.cuda.{n}Storage" for n in _CUDA_STORAGE_NAMES)
    names.update(f"torch.{n}Tensor" for n in _TENSOR_NAMES)
    names.update(f"torch.cuda.{n}Tensor" for n in _TENSOR_NAMES)
    names.update(f"torch.sparse.{n}Tensor" for n in _SPARSE_TENSOR_NAMES)
    names.update(f"torch.cuda.sparse.{n}Tensor" for n in _SPARSE_TENSOR_NAMES)
    for since, added in _ADDED.items():
        if version >= since:
            names.update(added)
    return frozenset(names)


# Names ``import torch`` itself adds with add_safe_globals, before any user code runs (checked on 2.14.1:
# torch/distributed/distributed_c10d.py allowlists every builtin exception class and traceback's summaries,
# torch/distributed/device_mesh.py its layouts, torch/nested/__init__.py the nested-tensor class). Every
# torch.load runs in a process that imported torch, so these are allowed there.
_REGISTERED_ON_IMPORT: dict[tuple[int, int], list[str]] = {
    (2, 14): ["traceback.StackSummary", "traceback.FrameSummary",
              "torch.distributed._mesh_layout._FlatLayout", "torch.distributed._mesh_layout._MeshLayout",
              "torch.nested._internal.nested_tensor.NestedTensor",
              "torch.nested._internal.nested_tensor._rebuild_njt"],
}
_EXCEPTIONS_SINCE = (2, 14)


@cache
def registered_on_import(version: tuple[int, int] = NEWEST_SUPPORTED_TORCH) -> frozenset[str]:
    """What ``import torch`` adds to the user allowlist (torch keys them by ``__module__.__qualname__``,
    so aliases such as ``builtins.IOError`` are not among them)."""
    import builtins

    names: set[str] = set()
    if version >= _EXCEPTIONS_SINCE:
        names.update(f"{t.__module__}.{t.__qualname__}" for t in vars(builtins).values()
                     if isinstance(t, type) and issubclass(t, BaseException))
    for since, added in _REGISTERED_ON_IMPORT.items():
        if version >= since:
            names.update(added)
    return frozenset(names)


@cache
def installed_torch_version() -> tuple[int, int] | None:
    """The installed torch's (major, minor), read from its metadata: no import (once per process: every
    file's verdict asks, and the look lists every folder on sys.path)."""
    from ..installed import version

    text = version("torch")
    try:
        parts = (text or "").split("+")[0].split(".")
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None


def allowed_globals() -> frozenset[str]:
    """The allowlist torch.load(weights_only=True) uses here.

    torch's live list when torch is already imported (never imported for this),
    else the table for the installed torch (plus what ``import torch`` registers),
    else for the newest supported one.
    """
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "_weights_only_unpickler"):
        wo = torch._weights_only_unpickler
        return frozenset(wo._get_allowed_globals()) | frozenset(wo._get_user_allowed_globals())
    v = installed_torch_version()
    version = min(v, NEWEST_SUPPORTED_TORCH) if v else NEWEST_SUPPORTED_TORCH
    return static_allowed_globals(version) | registered_on_import(version)
