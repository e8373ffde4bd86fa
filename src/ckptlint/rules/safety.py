"""CK1xx: pickle safety findings, from the inventory and the weights_only verdict."""

from __future__ import annotations

from ..findings import Finding
from ..inventory import GlobalRef, Inventory
from ..safety.weights_only import Verdict, safe_globals_line
from ..hookspecs import hookimpl
from ..rule import Rule

RULES = [
    Rule("CK101", "dangerous-global", "error", "a global that can run code or touch the system"),
    Rule("CK102", "full-model-pickle", "error", "pickled nn.Module classes: loading imports and runs their code"),
    Rule("CK103", "unknown-global", "error", "a global weights_only refuses whose import runs unknown code"),
    Rule("CK104", "data-global", "warning", "plain data weights_only refuses: allowlist it"),
    Rule("CK105", "weights-only-fails", "warning", "torch.load(weights_only=True) fails, and why"),
    Rule("CK106", "hidden-pickle", "error", "a pickle stream torch.load never reads"),
    Rule("CK107", "container-anomaly", "error", "readers may disagree about the file's content"),
]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context):  # type: ignore[no-untyped-def]
    return safety_findings(context.inventory, context.verdict, context.trusted)


# Streams a TorchScript archive normally holds besides data.pkl (traced_inputs.pkl: torch.jit.trace
# stores the example inputs); torch.jit.load reads them itself.
_TORCHSCRIPT_STREAMS = ("/data.pkl", "/constants.pkl", ".debug_pkl", "/traced_inputs.pkl")


def _where(g: GlobalRef) -> str:
    return f"{g.stream}@{g.offset}"


def _key(g: GlobalRef) -> str | None:
    return "/".join(str(p) for p in g.path) if g.path else None


def safety_findings(inv: Inventory, verdict: Verdict, trusted: frozenset[str] = frozenset()) -> list[Finding]:
    cats = verdict.categories
    out: list[Finding] = []
    seen: set[str] = set()
    models: list[GlobalRef] = []
    data: list[str] = []
    for g in inv.globals:
        cat = cats.get(g.qualname, "unknown")
        if g.qualname in seen:
            continue
        seen.add(g.qualname)
        if cat == "dangerous":
            out.append(Finding(
                "CK101", "error",
                f"{g.qualname} can run code or touch the system ({g.opcode})",
                _key(g), _where(g), "do not load this file"))
        elif g.qualname in trusted:
            continue
        elif cat == "model":
            if inv.format != "torchscript":  # CK105 says what TorchScript means for loading
                models.append(g)
        elif cat == "unknown" and not (inv.format == "torchscript" and g.module == "torch.jit._pickle"):
            out.append(Finding(
                "CK103", "error",
                f"{g.qualname}: loading imports {g.module}, which runs that module's code; "
                "weights_only=True refuses it",
                _key(g), _where(g),
                f"only if you trust it: ckptlint check --allow-global {g.qualname}, and load with "
                + safe_globals_line([g.qualname])))
        elif cat == "data" and g.stream in inv.facts.loaded_streams:
            data.append(g.qualname)
            out.append(Finding(
                "CK104", "warning",
                f"{g.qualname} is plain data, but weights_only=True refuses it",
                _key(g), _where(g), None))
    if models:
        names = list(dict.fromkeys(g.qualname for g in models))
        first = models[0]
        out.append(Finding(
            "CK102", "error",
            f"full-model pickle: {len(names)} model classes ({', '.join(names[:4])}"
            f"{', …' if len(names) > 4 else ''}); loading imports and runs their code",
            _key(first), _where(first),
            "load it once where you trust it, then torch.save(model.state_dict(), path) "
            "(or safetensors.torch.save_model)"))
    if data:
        fix = verdict.advice if verdict.advice.startswith("import ") else safe_globals_line(list(dict.fromkeys(data)))
        out = [f if f.code != "CK104" else Finding(f.code, f.severity, f.message, f.key, f.location, fix)
               for f in out]
    out.extend(_hidden_streams(inv, cats))
    out.extend(Finding("CK107", "error", f"readers may disagree about this file: {a}", None, None,
                       "re-save the checkpoint from a trusted copy")
               for a in inv.anomalies)
    if not verdict.loads:
        blocker = verdict.blocking[0]
        where = f"{blocker.stream}@{blocker.offset}" if blocker.offset is not None else None
        out.append(Finding(
            "CK105", "warning",
            f"torch.load(weights_only=True) fails (torch {verdict.torch_version}): "
            + "; ".join(b.detail for b in verdict.blocking[:3])
            + (f" (+{len(verdict.blocking) - 3} more)" if len(verdict.blocking) > 3 else ""),
            None, where, verdict.advice))
    return out


def _hidden_streams(inv: Inventory, cats: dict[str, str]) -> list[Finding]:
    """Pickles torch.load itself never reads, yet the file carries (polyglots, smuggled members)."""
    loaded = set(inv.facts.loaded_streams)
    out = []
    for stream in inv.facts.streams:
        if stream in loaded:
            continue
        if inv.format == "torchscript" and stream.endswith(_TORCHSCRIPT_STREAMS):
            continue
        refs = [g for g in inv.globals if g.stream == stream and cats.get(g.qualname) != "allowed"]
        out.append(Finding(
            "CK106", "error" if refs else "warning",
            f"pickle stream {stream} is not read by torch.load"
            + (f" but references {', '.join(dict.fromkeys(g.qualname for g in refs[:4]))}" if refs else ""),
            None, stream, "remove it: a checkpoint has no reason to carry another pickle"))
    return out
