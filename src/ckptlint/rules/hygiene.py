"""CK4xx: hygiene — what makes a checkpoint bigger, slower or more fragile than it needs to be."""

from __future__ import annotations

from ..findings import Finding
from ..formats.dtypes import ITEMSIZE
from ..inventory import Inventory, TensorRecord
from ..plugin import FileContext, hookimpl
from ..rule import Rule

STORAGE_BLOAT = Rule("CK401", "storage-bloat", "warning", "a small tensor saved as a view of a much larger storage")
TRAINING_STATE = Rule("CK402", "training-state-in-release", "warning",
                      "optimizer or training state inside a release checkpoint (release-files)")
FLOAT64 = Rule("CK403", "float64-weights", "warning", "float64 tensors: twice the size of float32, rarely intended")
META_OR_EMPTY = Rule("CK404", "meta-or-empty-tensor", "warning", "meta tensors (no data) or tensors with no elements")
ALIASED = Rule("CK405", "aliased-storage", "info", "several keys share one storage (tied weights)")
TOO_LARGE = Rule("CK406", "file-too-large", "error", "the file is larger than max-file-size")
RULES = [STORAGE_BLOAT, TRAINING_STATE, FLOAT64, META_OR_EMPTY, ALIASED, TOO_LARGE]

BLOAT_MIN_BYTES = 1 << 20
TRAINING_KEYS = frozenset({
    "optimizer", "optimizers", "optimizer_state", "optimizer_state_dict", "optimizer_states", "optim",
    "scheduler", "schedulers", "lr_scheduler", "lr_schedulers", "scaler", "grad_scaler", "amp", "loops",
    "callbacks", "global_step", "rng_state", "rng_states",
})


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
    inv: Inventory = context.inventory
    cfg = context.config
    out = storage_bloat(inv) + float64(inv) + meta_or_empty(inv) + aliased(inv)
    if cfg is not None and cfg.release_files and cfg.matches(context.path, cfg.release_files):
        out += training_state(inv)
    if cfg is not None and cfg.max_file_size and inv.facts.file_size > cfg.max_file_size:
        out.append(TOO_LARGE.finding(
            f"file is {_size(inv.facts.file_size)}, over max-file-size {_size(cfg.max_file_size)}",
            fix="shard it, drop training state, or store in half precision"))
    return out


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _key(t: TensorRecord) -> str:
    return "/".join(map(str, t.path))


def _span(t: TensorRecord) -> tuple[int, int] | None:
    """Byte range of the storage a tensor can reach (None when unknown)."""
    size = ITEMSIZE.get(t.dtype)
    if size is None or t.stride is None or t.layout != "strided":
        return None
    if t.numel == 0:
        return t.storage_offset * size, t.storage_offset * size
    extent = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride, strict=False))
    return t.storage_offset * size, (t.storage_offset + extent) * size


def storage_bloat(inv: Inventory) -> list[Finding]:
    if max([t.storage_bytes or 0 for t in inv.tensors], default=0) < BLOAT_MIN_BYTES:
        return []  # no storage big enough to waste enough: nothing to group (100,000s of tensors)
    total_of: dict[str, int] = {}  # a storage's size is its first tensor's storage_bytes
    for t in inv.tensors:
        if t.storage_bytes and t.storage_key is not None and t.storage_key not in total_of:
            total_of[t.storage_key] = t.storage_bytes
    # under BLOAT_MIN_BYTES nothing can be wasted enough: only the big storages are grouped and measured
    big = {k for k, n in total_of.items() if n >= BLOAT_MIN_BYTES}
    by_storage: dict[str, list[TensorRecord]] = {}
    if big:
        for t in inv.tensors:
            if t.storage_key in big and t.storage_bytes:
                by_storage.setdefault(t.storage_key, []).append(t)
    out = []
    for key, ts in by_storage.items():
        spans = [_span(t) for t in ts]
        if any(s is None for s in spans):
            continue
        used = max(e for _, e in spans) - min(b for b, _ in spans)  # type: ignore[misc]
        total = ts[0].storage_bytes or 0
        wasted = total - used
        if wasted >= BLOAT_MIN_BYTES and wasted * 2 >= total:
            out.append(STORAGE_BLOAT.finding(
                f"{_key(ts[0])} uses {_size(used)} of a {_size(total)} storage; torch.save writes the whole "
                f"storage: {_size(wasted)} wasted",
                key=_key(ts[0]), location=f"storage {key}", fix="save a copy instead of a view: tensor.clone()"))
    return out


def float64(inv: Inventory) -> list[Finding]:
    hits = [t for t in inv.tensors if t.dtype == "float64" and not _under_training_state(t)]
    if not hits:
        return []
    total = sum(t.numel * 8 for t in hits)
    return [FLOAT64.finding(
        f"{len(hits)} float64 tensors ({_size(total)}), e.g. {_key(hits[0])}: float32 halves that",
        key=_key(hits[0]), fix="convert before saving: {k: v.float() for k, v in sd.items()}")]


def _under_training_state(t: TensorRecord) -> bool:
    return any(isinstance(p, str) and p in TRAINING_KEYS for p in t.path)


def meta_or_empty(inv: Inventory) -> list[Finding]:
    meta = [t for t in inv.tensors if t.device == "meta"]
    # numel == 0 exactly when a dimension is 0 (no product computed per tensor)
    empty = [t for t in inv.tensors if 0 in t.shape and t.device != "meta" and not _under_training_state(t)]
    out = []
    if meta:
        out.append(META_OR_EMPTY.finding(
            f"{len(meta)} meta tensors carry no data, e.g. {_key(meta[0])}: loading gives no weights",
            key=_key(meta[0]), fix="materialise the model (to_empty + init or a real load) before saving"))
    if empty:
        out.append(META_OR_EMPTY.finding(f"{len(empty)} tensors have no elements, e.g. {_key(empty[0])}",
                                         key=_key(empty[0]), severity="info"))
    return out


def aliased(inv: Inventory) -> list[Finding]:
    out = []
    for key, paths in inv.shared_storages().items():
        names = ["/".join(map(str, p)) for p in paths]
        out.append(ALIASED.finding(
            f"{len(names)} keys share storage {key} ({', '.join(names[:3])}"
            f"{', …' if len(names) > 3 else ''}): tied weights or views",
            key=names[0], location=f"storage {key}"))
    return out


def training_state(inv: Inventory) -> list[Finding]:
    root = inv.structure if isinstance(inv.structure, dict) else {}
    keys = [k for k in root if k in TRAINING_KEYS]
    if not keys:
        return []
    return [TRAINING_STATE.finding(f"release checkpoint carries training state: {', '.join(keys)}", key=keys[0],
                                   fix="save only the weights: torch.save(model.state_dict(), path)")]
