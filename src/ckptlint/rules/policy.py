"""CK11x: policy switches from the configuration (off unless configured)."""

from __future__ import annotations

from ..findings import Finding
from ..plugin import FileContext, hookimpl
from ..rule import Rule
from ..vocab import LEGACY_FORMATS

WEIGHTS_ONLY_REQUIRED = Rule("CK110", "weights-only-required", "error",
                             "policy require-weights-only: the file must load with torch.load(weights_only=True)")
LEGACY_FORMAT = Rule("CK111", "legacy-format", "error",
                     "policy forbid-legacy-format: the pre-1.6 non-zip or tar format")
SAFETENSORS_REQUIRED = Rule("CK112", "safetensors-required", "error",
                            "policy require-safetensors: the file is not safetensors")
RULES = [WEIGHTS_ONLY_REQUIRED, LEGACY_FORMAT, SAFETENSORS_REQUIRED]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding] | None:
    cfg = context.config
    if cfg is None:
        return None
    inv = context.inventory
    out = []
    if cfg.require_weights_only and not context.verdict.loads:
        out.append(WEIGHTS_ONLY_REQUIRED.finding(
            f"policy: must load with weights_only=True, but {context.verdict.advice}", fix=context.verdict.advice))
    if cfg.forbid_legacy_format and inv.format in LEGACY_FORMATS:
        out.append(LEGACY_FORMAT.finding(
            f"policy: {inv.format} format is forbidden",
            fix="re-save with torch.save(obj, path) (zip format, the default since torch 1.6)"))
    if cfg.require_safetensors:
        shards = inv.facts.extra.get("shards", {}) if inv.format == "sharded-index" else {}
        ok = inv.format == "safetensors" or (shards and all(f == "safetensors" for f in shards.values()))
        if not ok:
            out.append(SAFETENSORS_REQUIRED.finding(
                f"policy: checkpoints must be safetensors, this is {inv.format}",
                fix="safetensors.torch.save_file(state_dict, path) (or save_model for tied weights)"))
    return out
