"""CK108: what a TorchScript archive's code runs when ``torch.jit.load`` reads it.

The operations come from formats/torchscript_code.py (``facts.extra["torchscript_code"]``).
An operation is judged here, by exact name: the operators torch itself registers that
touch files, processes or the network; the operator namespaces torch registers (tensor
math, quantized kernels …); anything else needs a library loaded from elsewhere and
is unknown. ``torch.load(weights_only=False)`` hands such archives to ``torch.jit.load``.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..inventory import Inventory
from ..plugin import FileContext, hookimpl
from ..rule import Rule
from ..safety.torchscript_ops import (  # noqa: F401 - the tables are part of this rule's documented surface
    DANGEROUS_CLASS_NAMESPACES,
    DANGEROUS_NAMESPACES,
    DANGEROUS_OPS,
    KNOWN_CLASS_NAMESPACES,
    KNOWN_NAMESPACES,
    judge,
)

TORCHSCRIPT_CODE = Rule("CK108", "torchscript-code", "error",
                        "TorchScript code that runs at load (or when called) touches files, processes or the network")
RULES = [TORCHSCRIPT_CODE]

@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
    return torchscript_findings(context.inventory)


def torchscript_findings(inv: Inventory) -> list[Finding]:
    code: dict[str, Any] | None = inv.facts.extra.get("torchscript_code")
    if inv.format != "torchscript" or not code:
        return []
    out: list[Finding] = []
    for why in code.get("unreadable", []):
        out.append(TORCHSCRIPT_CODE.finding(
            f"TorchScript code ckptlint cannot read, which torch.jit.load compiles and may run: {why}",
            location=why.split(":", 1)[0], fix="do not load this file"))
    for g in inv.globals:
        # data.pkl/constants.pkl objects of torch custom classes: their native __setstate__ runs at load.
        if g.module.startswith("__torch__.torch.classes."):
            op = f"{g.qualname.removeprefix('__torch__.')}"
            verdict = judge(op)
            if verdict is not None:
                out.append(TORCHSCRIPT_CODE.finding(
                    f"{g.stream} builds {op} objects ({verdict[0]}: {verdict[1]}); torch.jit.load runs "
                    "their native __setstate__ at load",
                    location=f"{g.stream}@{g.offset}", fix="do not load this file"))
    for op in code.get("operations", []):
        verdict = judge(op["op"])
        if verdict is None:
            continue
        kind, why = verdict
        where = f"{op['member']}:{op['line']}"
        if op["at_load"]:
            out.append(TORCHSCRIPT_CODE.finding(
                f"TorchScript code runs {op['op']} ({kind}: {why}) at load, from {op['entry']}; "
                "torch.load(weights_only=False) and torch.jit.load run it",
                location=where, fix="do not load this file; ask for a state_dict (torch.save(model.state_dict()))"))
        else:
            out.append(TORCHSCRIPT_CODE.finding(
                f"TorchScript method {op['entry']} calls {op['op']} ({kind}: {why}) when the model runs",
                location=where, fix="this code runs when the model is called, not at load; load the weights alone "
                "(a state_dict or safetensors file) and run your own model class", severity="warning"))
    return out
