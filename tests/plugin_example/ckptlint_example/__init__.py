"""An example third-party ckptlint plugin: one rule, one output format, one target resolver."""

from __future__ import annotations

from ckptlint.plugin import FileContext, Finding, ModuleSig, Rule, Signature, TensorSig, hookimpl

DEBUG_TENSOR = Rule("EX001", "debug-tensor", "warning", "a tensor whose key mentions 'debug' was saved")


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return [DEBUG_TENSOR]


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
    return [DEBUG_TENSOR.finding(f"debug tensor {t.key!r} saved", key="/".join(map(str, t.path)),
                                 fix="drop it before saving")
            for t in context.inventory.tensors if "debug" in t.key]


@hookimpl
def ckptlint_reporters():
    return {"count": lambda report, options: f"{len(report.findings())} findings"}


@hookimpl
def ckptlint_resolve_target(spec, kwargs):
    if not spec.startswith("example:"):
        return None
    width = int(kwargs.get("width", 2))
    linear = ModuleSig("", "example.Linear", 1, (), (), {"weight": TensorSig((width, width), "float32", "parameter")})
    return Signature(spec, kwargs, (linear,)), None
