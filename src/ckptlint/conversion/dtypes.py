"""Which torch dtypes a safetensors file can hold, and how their bytes are laid out.

The names are the Inventory's (``formats.dtypes``: ``float32``, ``bfloat16``, ``float8_e4m3fn`` …); the
codes are the safetensors header's. Only dtypes ``safetensors.torch`` maps back to the same torch dtype
are listed, so a converted file loads as the tensors ``torch.load`` gives; everything else (complex128,
quantized, bits, float4/e8m0) is refused by name.
"""

from __future__ import annotations

from ..formats.dtypes import ITEMSIZE

SAFETENSORS_CODE: dict[str, str] = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "uint16": "U16", "uint32": "U32", "uint64": "U64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "complex64": "C64",
}
"""Inventory dtype name -> safetensors dtype code (``safetensors.torch`` 0.8's ``_TYPES``, inverted)."""


def safetensors_code(dtype: str) -> str | None:
    """The safetensors dtype code for ``dtype``, or None when safetensors cannot hold it."""
    return SAFETENSORS_CODE.get(dtype)


def itemsize(dtype: str) -> int | None:
    """Bytes per element (None for a dtype ckptlint does not know)."""
    return ITEMSIZE.get(dtype)


def swap_unit(storage_dtype: str) -> int:
    """The byte-group ``Storage.byteswap(dtype)`` reverses when a big-endian zip is loaded on a
    little-endian machine: the element size, halved for complex (each real component is swapped);
    1 (nothing to swap) for one-byte and untyped (``uint8``) storages."""
    size = ITEMSIZE.get(storage_dtype, 1)
    return size // 2 if storage_dtype.startswith("complex") else size
