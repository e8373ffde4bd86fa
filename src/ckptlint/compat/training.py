"""What training libraries put in a state_dict that torch's key checks alone misjudge or a rename fix
would silently lose: DTensor shards (FSDP2), FSDP1 flat parameters, torch.ao packed weights, fp8
codes with their scales, and optimizer state_dicts taken for a model (accelerate's ``optimizer.bin``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..inventory import Inventory, TensorRecord
from ..record import replace
from ..targets.signature import Signature
from .compare import CompatResult
from .fixes import Fix, apply_fix, rename_key
from .loaders import dcp_refusal, torchscript_refusal, with_loader
from .snippet import predicted_verdict
from .unwrap import NonTensor, StateDict

DTENSOR = ("a DTensor (an FSDP2 / tensor-parallel shard): copying it into a plain tensor raises; save a full "
           "state_dict instead (get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)), "
           "or DTensor.full_tensor())")
FLAT_PARAM = "_flat_param"
PACKED = "_packed_params._packed_params"
SCALE_SUFFIXES = ("_scale_inv", "_scale")
FP8_MARK = "dequantizes them"


def _dtensor_file(inv: Inventory) -> bool:
    return any(g.qualname == "torch.distributed.tensor.DTensor" for g in inv.globals)


def _is_dtensor(entry: Any) -> bool:
    return isinstance(entry, TensorRecord) and entry.rebuild == "_rebuild_wrapper_subclass"


def adjusted(inv: Inventory, run: Callable[[StateDict], CompatResult]) -> Callable[[StateDict], CompatResult]:
    """``run`` on the state_dict with tensors inside tuple values resolved (torch.ao's packed
    ``(weight, bias)``, which a quantized target's own load code unpacks), and with torch's copy error
    for DTensor values: load_state_dict checks the (global) shape, then ``param.copy_(dtensor)`` raises
    "got mixed torch.Tensor and DTensor" even with strict=False."""
    dtensors = _dtensor_file(inv)

    def checked(sd: StateDict) -> CompatResult:
        r = run(_resolved(inv, sd))
        if not dtensors:
            return r
        skip = set(r.missing) | set(r.unexpected) | set(r.shape_mismatch) | set(r.non_tensor)
        extra = {k: DTENSOR for k, v in sd.entries.items() if _is_dtensor(v) and k not in skip}
        if not extra:
            return r
        dtypes = {k: v for k, v in r.dtype_mismatch.items() if k not in extra}
        return replace(r, non_tensor={**r.non_tensor, **extra}, dtype_mismatch=dtypes)
    return checked


def _resolved(inv: Inventory, sd: StateDict) -> StateDict:
    entries: dict[str, TensorRecord | NonTensor] = {}
    changed = False
    for k, v in sd.entries.items():
        if isinstance(v, NonTensor) and isinstance(v.value, list) and not k.endswith("_extra_state") \
                and v.value and all(_tensor_or_none(n) for n in v.value):
            leaves = [None if n is None else _record(inv, n["__tensor__"]) for n in v.value]
            if all(n is None or leaf is not None for n, leaf in zip(v.value, leaves, strict=True)):
                entries[k] = NonTensor(v.summary, leaves)
                changed = True
                continue
        entries[k] = v
    return replace(sd, entries=entries) if changed else sd


def _record(inv: Inventory, index: Any) -> TensorRecord | None:
    return inv.tensors[index] if isinstance(index, int) and 0 <= index < len(inv.tensors) else None


def live_value(entry: NonTensor, torch: Any) -> Any:
    """A stand-in for a non-tensor value a target's own load code reads (torch.ao's packed
    ``(weight, bias)`` tuple, a ``torch.qint8`` dtype); the entry itself when it is neither."""
    node = entry.value
    if isinstance(node, dict) and set(node) == {"__global__"}:
        value = getattr(torch, str(node["__global__"]).removeprefix("torch."), None)
        return value if isinstance(value, torch.dtype) else entry
    if isinstance(node, list) and node and all(n is None or isinstance(n, TensorRecord) for n in node):
        return tuple(None if n is None else _stand_in(n, torch) for n in node)
    return entry


def _tensor_or_none(node: Any) -> bool:
    return node is None or (isinstance(node, dict) and set(node) == {"__tensor__"})


def _stand_in(rec: TensorRecord, torch: Any) -> Any:
    dtype = getattr(torch, rec.dtype, torch.float32)
    if rec.dtype in ("qint8", "quint8", "qint32"):
        return torch._empty_affine_quantized(rec.shape, scale=1.0, zero_point=0, dtype=dtype)
    return torch.zeros(rec.shape, dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32)


def explain(inv: Inventory, sd: StateDict, fix: Fix | None,
            run: Callable[[StateDict], CompatResult] | None = None, sig: Signature | None = None) -> None:
    """Say what the fix's dropped keys lose, load fp8 weights and torch.ao packed weights dequantized
    instead of as raw codes or not at all (re-checked with ``run``), and open the file with its
    format's own loader (safetensors, shards, TorchScript, .pt2, DCP)."""
    if fix is None:
        return
    unpacked = _unpack_packed(inv, sd, fix, run) if run is not None else set()
    if run is not None and sig is not None:
        unpacked |= _unflatten(sd, fix, run, sig)
    shards = inv.facts.extra.get("shards")
    refusal = (dcp_refusal(predicted_verdict(inv).categories) if inv.format == "dcp"
               else torchscript_refusal(inv) if inv.format == "torchscript" else "")
    fix.snippet = with_loader(fix.snippet, inv.format, inv.path,
                              tuple(shards) if isinstance(shards, dict) else (), refusal)
    dropped = set(fix.drop)
    renamed = {k: rename_key(k, fix.renames) for k in sd.entries}
    for key, new in renamed.items():
        if new not in dropped:
            continue
        if key.endswith(PACKED) and key not in unpacked:
            owner = key[: -len(PACKED)].rstrip(".")
            fix.diagnosis.append(
                f"{key} holds the int8-quantized (torch.ao packed) weight and bias of {owner or 'the model'}: "
                f"a float model cannot take them as they are, so {owner + '.' if owner else ''}weight and bias stay at "
                "their initial values; load into the quantized model (quantize_dynamic / convert), or "
                f"dequantize: weight, bias = state_dict[{key!r}]; weight.dequantize()")
        elif key.rsplit(".", 1)[-1] == FLAT_PARAM and key not in unpacked:
            rec = sd.entries[key]
            size = f" ({rec.numel} elements)" if isinstance(rec, TensorRecord) else ""
            fix.diagnosis.append(
                f"{key} is an FSDP1 FlatParameter{size}: every parameter of the wrapped module flattened into "
                "one tensor, without their names or shapes, so no rename can load it and those parameters stay "
                "at their initial values; save a full state_dict instead (FSDP.state_dict_type(model, "
                "StateDictType.FULL_STATE_DICT), or get_model_state_dict with full_state_dict=True)")
    _dequantize_fp8(sd, fix, renamed)


def fp8_pairs(sd: StateDict) -> list[tuple[str, str]]:
    """(fp8 weight key, its scale key) pairs: ``w`` in a float8 dtype with ``w_scale`` / ``w_scale_inv``."""
    out = []
    for key, v in sd.entries.items():
        if isinstance(v, TensorRecord) and v.dtype.startswith("float8"):
            for suffix in SCALE_SUFFIXES:
                scale = sd.entries.get(key + suffix)
                if isinstance(scale, TensorRecord):
                    out.append((key, key + suffix))
                    break
    return out


def _dequantize_fp8(sd: StateDict, fix: Fix, renamed: dict[str, str]) -> None:
    dropped = set(fix.drop)
    todo = [(renamed[w], w, s) for w, s in fp8_pairs(sd) if renamed[s] in dropped and renamed[w] not in dropped]
    if not todo or "metadata = getattr(state_dict" not in fix.snippet:
        return
    fix.diagnosis.append(
        f"{len(todo)} fp8 weight{'s' if len(todo) != 1 else ''} stored as scaled codes ({todo[0][1]} with "
        f"{todo[0][2]}): loading the codes without their scale would give wrong values, so the snippet "
        f"{FP8_MARK} (code * scale, block-wise scales expanded) before loading")
    lines = [
        "# fp8 weights are codes with a scale: dequantize (code * scale) before loading",
        "def dequantize(weight, scale):",
        "    weight, scale = weight.to(torch.float32), scale.to(torch.float32)",
        "    if scale.dim() == weight.dim():  # block-wise scales: one per block of rows / columns",
        "        for dim in range(scale.dim()):",
        "            if scale.shape[dim] not in (1, weight.shape[dim]):",
        "                block = -(-weight.shape[dim] // scale.shape[dim])",
        "                scale = scale.repeat_interleave(block, dim=dim).narrow(dim, 0, weight.shape[dim])",
        "    return weight * scale",
        "",
        f"for key, weight_key, scale_key in {todo!r}:",
        "    fixed[key] = dequantize(state_dict[weight_key], state_dict[scale_key])",
    ]
    fix.snippet = _insert_before(fix.snippet, "metadata = getattr(state_dict", lines)


def _insert_before(snippet: str, marker: str, lines: list[str]) -> str:
    out = snippet.splitlines()
    at = next((i for i, line in enumerate(out) if line.startswith(marker)), len(out))
    return "\n".join(out[:at] + lines + out[at:]) + "\n"



def dequantizing(diagnosis: list[str] | tuple[str, ...]) -> bool:
    """The fix loads fp8 weights dequantized with their scales (the one-line fix text says so)."""
    return any(FP8_MARK in d for d in diagnosis)


def _unpack_packed(inv: Inventory, sd: StateDict, fix: Fix,
                   run: Callable[[StateDict], CompatResult]) -> set[str]:
    """Load torch.ao packed ``(int8 weight, bias)`` pairs into a float model's weight and bias
    (``weight.dequantize()``) when the model expects them and the re-check still loads."""
    if "metadata = getattr(state_dict" not in fix.snippet:
        return set()  # not the generic snippet (a library's own loading code)
    missing = set(fix.random_init)
    pairs: list[tuple[str, str, TensorRecord, TensorRecord | None]] = []
    for key, entry in sd.entries.items():
        new = rename_key(key, fix.renames)
        if not key.endswith(PACKED) or new not in fix.drop or not isinstance(entry, NonTensor):
            continue
        owner = new[: -len(PACKED)]
        node = entry.value
        if not (isinstance(node, list) and len(node) == 2 and all(_tensor_or_none(n) for n in node)
                and node[0] is not None):
            continue
        weight = _record(inv, node[0]["__tensor__"])
        bias = None if node[1] is None else _record(inv, node[1]["__tensor__"])
        if weight is None or not weight.dtype.startswith(("qint", "quint")) or owner + "weight" not in missing:
            continue
        pairs.append((key, owner, replace(weight, dtype="float32", rebuild="dequantize"), bias))
    if not pairs:
        return set()
    fixed = apply_fix(sd, fix.renames, fix.drop, fix.transpose)
    entries: dict[str, TensorRecord | NonTensor] = dict(fixed.entries)
    for _, owner, weight, bias in pairs:
        entries[owner + "weight"] = weight
        if bias is not None:
            entries[owner + "bias"] = bias
    res = run(replace(fixed, entries=entries))
    if not res.nonstrict_ok:
        return set()
    fix.random_init = [k for k in fix.random_init if k in res.missing]
    fix.strict = res.strict_ok
    owners = ", ".join(o.rstrip(".") or "(the model)" for _, o, _, _ in pairs)
    fix.diagnosis.append(
        f"{len(pairs)} torch.ao packed (int8 weight, bias) pair{'s' if len(pairs) != 1 else ''} ({owners}): the "
        "snippet loads each weight dequantized (weight.dequantize(): the int8 values times their scales, so "
        "they differ from the original float weights by the quantization error) and its bias as saved")
    lines = [
        "# torch.ao packed (int8 weight, bias) pairs: dequantized into the float model's weight and bias",
        f"for key, owner in {[(k, o) for k, o, _, _ in pairs]!r}:",
        "    weight, bias = state_dict[key]",
        "    fixed[owner + \"weight\"] = weight.dequantize()",
        "    if bias is not None:",
        "        fixed[owner + \"bias\"] = bias",
    ]
    _rewrite(fix, lines)
    return {k for k, _, _, _ in pairs}


def _rewrite(fix: Fix, lines: list[str]) -> None:
    """Insert ``lines`` before the snippet's metadata step and make its last load match ``fix.strict``."""
    snippet = _insert_before(fix.snippet, "metadata = getattr(state_dict", lines).splitlines()
    at = next((i for i, line in enumerate(snippet)
               if line.startswith(("model.load_state_dict(fixed", "result = model.load_state_dict(fixed"))), None)
    if at is not None:
        tail = ["model.load_state_dict(fixed, strict=True)"] if fix.strict else [
            "result = model.load_state_dict(fixed, strict=False)",
            f"# left at their initial values ({len(fix.random_init)}): {fix.random_init!r}"]
        snippet = snippet[:at] + tail
    fix.snippet = "\n".join(snippet) + "\n"


FSDP_WRAPPER = "_fsdp_wrapped_module."


def _unflatten(sd: StateDict, fix: Fix, run: Callable[[StateDict], CompatResult], sig: Signature) -> set[str]:
    """An unsharded FSDP1 FlatParameter (world size 1, no padding) holds its module's parameters in
    ``named_parameters()`` order; when the sizes of the parameters left initialised add up to its
    length exactly, the fix slices it back into them (re-checked with torch's rules)."""
    if "metadata = getattr(state_dict" not in fix.snippet:
        return set()
    left = set(fix.random_init)
    expected = sig.expected()
    tied = set(sig.shared)
    done: set[str] = set()
    plans: list[tuple[str, list[tuple[str, tuple[int, ...]]]]] = []
    fixed = apply_fix(sd, fix.renames, fix.drop, fix.transpose)
    entries: dict[str, TensorRecord | NonTensor] = dict(fixed.entries)
    for key, rec in sd.entries.items():
        if key.rsplit(".", 1)[-1] != FLAT_PARAM or not isinstance(rec, TensorRecord) or len(rec.shape) != 1 \
                or rename_key(key, fix.renames) not in fix.drop:
            continue
        owner = key[: -len(FLAT_PARAM)].replace(FSDP_WRAPPER, "")
        names = [k for k, t in expected.items() if k.startswith(owner) and t.kind == "parameter"
                 and k in left and k not in tied and not t.lazy]
        sizes = [_numel(expected[k].shape) for k in names]
        if not names or sum(sizes) != rec.numel:
            continue
        plans.append((key, [(k, expected[k].shape) for k in names]))
        for k in names:
            entries[k] = replace(rec, path=(k,), shape=expected[k].shape, stride=None)
        done.add(key)
    if not plans:
        return set()
    res = run(replace(fixed, entries=entries))
    if not res.nonstrict_ok:
        return set()
    fix.random_init = [k for k in fix.random_init if k in res.missing]
    fix.strict = res.strict_ok
    n = sum(len(p) for _, p in plans)
    fix.diagnosis.append(
        f"{', '.join(k for k, _ in plans)}: an unsharded FSDP1 FlatParameter whose length is exactly the "
        f"sum of the {n} parameters left initialised: the snippet slices it back into them in this model's "
        "named_parameters() order (a FlatParameter keeps no names: this assumes the saved module is this model)")
    lines = ["# FSDP1 FlatParameter: the module's parameters flattened in named_parameters() order"]
    for key, plan in plans:
        lines += [
            f"flat, offset = state_dict[{key!r}], 0",
            f"for name, shape in {plan!r}:",
            "    numel = 1",
            "    for size in shape:",
            "        numel *= size",
            "    fixed[name] = flat[offset:offset + numel].view(shape).clone()",
            "    offset += numel",
        ]
    _rewrite(fix, lines)
    return done


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
