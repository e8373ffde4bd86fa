"""TorchScript operators judged by exact name: those that touch files, processes or the network, and the
operator namespaces torch registers. CK108 (rules/torchscript.py) reports with them; compat's loading code
refuses archives whose load-time code they flag."""

from __future__ import annotations

# Operators torch registers that reach outside the process's tensors (torch 2.14
# ``torch._C._jit_get_all_schemas()``, read by tests/differential/test_torchscript_vs_torch.py).
DANGEROUS_OPS: dict[str, str] = {
    "aten::save": "writes a file (torch.save)",
    "aten::from_file": "reads (and with shared=True maps) a file",
    "debugprims::load_tensor": "reads a tensor from a file",
    "prim::rpc_async": "calls a remote worker (torch.distributed.rpc)",
    "prim::rpc_sync": "calls a remote worker (torch.distributed.rpc)",
    "prim::rpc_remote": "calls a remote worker (torch.distributed.rpc)",
    "prim::PythonOp": "runs Python code",
    "prim::IgnoredPythonOp": "runs Python code",
    # torchvision's, registered when torchvision is imported
    "image::read_file": "reads a file (torchvision.io.read_file)",
    "image::write_file": "writes a file (torchvision.io.write_file)",
}
DANGEROUS_NAMESPACES: dict[str, str] = {
    "c10d": "collective communication over the network (torch.distributed)",
    "_c10d_functional": "collective communication over the network (torch.distributed)",
    "c10d_functional": "collective communication over the network (torch.distributed)",
    "_c10d_functional_autograd": "collective communication over the network (torch.distributed)",
    "_dtensor": "collective communication over the network (torch.distributed)",
    "symm_mem": "reads and writes other processes' memory (symmetric memory)",
}
# Operator namespaces torch (and torchvision) register; their operators compute on tensors and values.
KNOWN_NAMESPACES = frozenset({
    "aten", "prim", "prims", "quantized", "_quantized", "quantization", "sparse", "mkldnn",
    "mkldnn_prepacked", "onednn", "mkl", "cuda", "profiler", "inductor", "inductor_prims", "rngprims",
    "_native", "static_runtime", "onnx", "xnnpack", "_xnnpack", "vulkan", "vulkan_prepack", "mps",
    "_test", "debug_mode_ops", "coor", "export", "_inductor_test", "flex_lib", "fsdp", "mempool", "onnx_symbolic",
    "streams",
    # torchvision's (detection ops; image decoding, whose file operators are listed above)
    "torchvision", "image",
})
# torch.classes namespaces torch registers (``torch._C._jit_get_custom_class_schemas()``).
DANGEROUS_CLASS_NAMESPACES: dict[str, str] = {
    "c10d": "a process group: network communication (torch.distributed)",
    "dist_c10d": "a store or process group: network communication (torch.distributed)",
    "dist_rpc": "remote procedure calls (torch.distributed.rpc)",
    "_nnapi": "loads the Android NNAPI native library",
}
KNOWN_CLASS_NAMESPACES = frozenset({
    "quantized", "rnn", "sparse", "mkldnn", "cuda", "profiling", "backendutils", "aten", "xnnpack",
})


def judge(op: str) -> tuple[str, str] | None:
    """``(kind, why)`` for an operation that is not harmless; kind is ``dangerous`` or ``unknown``."""
    if op.startswith("torch.classes."):
        parts = op.split(".")
        ns = parts[2] if len(parts) > 2 else ""
        if ns in DANGEROUS_CLASS_NAMESPACES:
            return "dangerous", DANGEROUS_CLASS_NAMESPACES[ns]
        if ns in KNOWN_CLASS_NAMESPACES:
            return None
        return "unknown", f"custom class namespace {ns!r} is not torch's: it needs a library loaded from elsewhere"
    if "::" not in op:
        return "unknown", "a reference to a module ckptlint cannot follow to one operator"
    if op in DANGEROUS_OPS:
        return "dangerous", DANGEROUS_OPS[op]
    ns = op.split("::", 1)[0]
    if ns in DANGEROUS_NAMESPACES:
        return "dangerous", DANGEROUS_NAMESPACES[ns]
    if ns in KNOWN_NAMESPACES:
        return None
    return "unknown", f"operator namespace {ns!r} is not torch's: a library loaded from elsewhere defines it"
