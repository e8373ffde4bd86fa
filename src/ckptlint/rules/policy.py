"""CK11x: policy switches from the configuration (off unless configured)."""

from __future__ import annotations

from ..findings import Finding
from ..hookspecs import hookimpl
from ..rule import Rule

RULES = [
    Rule("CK110", "weights-only-required", "error",
         "policy require-weights-only: the file must load with torch.load(weights_only=True)"),
    Rule("CK111", "legacy-format", "error", "policy forbid-legacy-format: the pre-1.6 non-zip or tar format"),
    Rule("CK112", "safetensors-required", "error", "policy require-safetensors: the file is not safetensors"),
]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context):  # type: ignore[no-untyped-def]
    cfg = context.config
    if cfg is None:
        return None
    inv = context.inventory
    out = []
    if cfg.require_weights_only and not context.verdict.loads:
        out.append(Finding("CK110", "error", f"policy: must load with weights_only=True, but {context.verdict.advice}",
                           None, None, context.verdict.advice))
    if cfg.forbid_legacy_format and inv.format in ("torch-legacy", "torch-tar"):
        out.append(Finding("CK111", "error", f"policy: {inv.format} format is forbidden", None, None,
                           "re-save with torch.save(obj, path) (zip format, the default since torch 1.6)"))
    if cfg.require_safetensors:
        shards = inv.facts.extra.get("shards", {}) if inv.format == "sharded-index" else {}
        ok = inv.format == "safetensors" or (shards and all(f == "safetensors" for f in shards.values()))
        if not ok:
            out.append(Finding("CK112", "error", f"policy: checkpoints must be safetensors, this is {inv.format}",
                               None, None, "safetensors.torch.save_file(state_dict, path) (or save_model for tied "
                               "weights)"))
    return out
