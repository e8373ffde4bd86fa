"""CK1xx: pickle safety findings, from the inventory and the weights_only verdict."""

from __future__ import annotations

from collections.abc import Mapping

from ..findings import Finding
from ..inventory import GlobalRef, Inventory
from ..plugin import FileContext, hookimpl
from ..record import replace
from ..results import Blocker, Verdict
from ..rule import Rule
from ..safety.classify import import_effect
from ..safety.names import DATA as DATA_NAMES
from ..safety.weights_only import safe_globals_line

DANGEROUS = Rule("CK101", "dangerous-global", "error", "a global that can run code or touch the system")
FULL_MODEL = Rule("CK102", "full-model-pickle", "error",
                  "pickled nn.Module classes: loading imports and runs their code")
UNKNOWN = Rule("CK103", "unknown-global", "error", "a global weights_only refuses whose import runs unknown code")
DATA = Rule("CK104", "data-global", "warning", "plain data weights_only refuses: allowlist it")
WEIGHTS_ONLY_FAILS = Rule("CK105", "weights-only-fails", "warning", "torch.load(weights_only=True) fails, and why")
HIDDEN_PICKLE = Rule("CK106", "hidden-pickle", "error", "a pickle stream torch.load never reads")
ANOMALY = Rule("CK107", "container-anomaly", "error", "readers may disagree about the file's content")
RULES = [DANGEROUS, FULL_MODEL, UNKNOWN, DATA, WEIGHTS_ONLY_FAILS, HIDDEN_PICKLE, ANOMALY]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
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
            out.append(DANGEROUS.finding(
                f"{g.qualname} can run code or touch the system ({g.opcode})",
                key=_key(g), location=_where(g), fix="do not load this file"))
        elif g.qualname in trusted:
            continue
        elif cat == "model":
            if inv.format != "torchscript":  # CK105 says what TorchScript means for loading
                models.append(g)
        elif cat == "unknown" and not (inv.format == "torchscript" and g.module == "torch.jit._pickle"):
            chain = "; the name is an attribute chain (pickle resolves it with getattr)" if "." in g.name else ""
            out.append(UNKNOWN.finding(
                f"{g.qualname} is on no list ckptlint trusts: {import_effect(g.module)}{chain}; "
                "weights_only=True refuses it",
                key=_key(g), location=_where(g),
                fix="re-save the checkpoint with plain types; only if you wrote this class and trust the file: "
                f"ckptlint check --allow-global {g.qualname}"))
        elif cat == "data" and g.stream in inv.facts.loaded_streams:
            data.append(g.qualname)
            out.append(DATA.finding(
                f"{g.qualname} is plain data ({DATA_NAMES.get(g.qualname, 'on the data list')}), "
                "but weights_only=True refuses it",
                key=_key(g), location=_where(g)))
    if models:
        names = list(dict.fromkeys(g.qualname for g in models))
        first = models[0]
        out.append(FULL_MODEL.finding(
            f"full-model pickle: {len(names)} model class{'' if len(names) == 1 else 'es'} ({', '.join(names[:4])}"
            f"{', …' if len(names) > 4 else ''}); loading imports and runs their code",
            key=_key(first), location=_where(first),
            fix="ask for a state_dict instead: torch.save(model.state_dict(), path) where the model was made; "
            f"or convert it without running it: {CONVERT} writes its state_dict() tensors (docs/convert.md); "
            "check --model CLASS prints loading code that allowlists only its model classes where that is safe"))
    if data:
        # add_safe_globals advice only ever names entries of the exact data list (safety/names.py)
        # the fix stays one line of code (tests execute it); the pointer at convert goes in the message
        fix = safe_globals_line([q for q in dict.fromkeys(data) if q in DATA_NAMES])
        out = [f if f.code != DATA.code else replace(f, fix=fix, message=f"{f.message}; {KEEP_TENSORS}")
               for f in out]
    out.extend(_hidden_streams(inv, cats))
    out.extend(ANOMALY.finding(f"readers may disagree about this file: {a}",
                               fix="re-save the checkpoint from a trusted copy")
               for a in inv.anomalies if not _decided_magic_check(inv, a, cats))
    # CK105 says why weights_only=True fails, minus the causes CK101/CK102 already report (one finding
    # per cause); nothing left -> no CK105 (the verdict itself stays in the report and the JSON).
    reported = {g.qualname for g in models} | {g.qualname for g in inv.globals if cats.get(g.qualname) == "dangerous"}
    blocking = [b for b in verdict.blocking
                if not (b.kind in ("global", "structure") and (b.cls or b.detail) in reported)]
    if not verdict.loads and blocking:
        blocker = blocking[0]
        where = f"{blocker.stream}@{blocker.offset}" if blocker.offset is not None else None
        out.append(WEIGHTS_ONLY_FAILS.finding(
            f"torch.load(weights_only=True) fails (torch {verdict.torch_version}): "
            + "; ".join(b.detail for b in blocking[:3])
            + (f" (+{len(blocking) - 3} more)" if len(blocking) > 3 else "")
            + (f"; {KEEP_TENSORS}" if _only_contents(blocking) else ""),
            location=where, fix=verdict.advice))
    return out


CONVERT = "ckptlint convert FILE OUT.safetensors"
KEEP_TENSORS = f"to keep only its tensors, without loading it: {CONVERT} (docs/convert.md)"


def _only_contents(blocking: list[Blocker]) -> bool:
    """weights_only refuses the file only for what it holds besides tensors (data or unknown classes, no code,
    no model classes, no format problem): ``ckptlint convert`` writes the tensors without them."""
    return bool(blocking) and all(b.kind in ("global", "structure") and b.category in ("data", "unknown")
                                  for b in blocking)


_MAGIC_UNDECIDED = "torch compares an object the file builds with"


def _decided_magic_check(inv: Inventory, anomaly: str, cats: Mapping[str, str]) -> bool:
    """The legacy reader could not evaluate torch's magic-number comparison on a built object; when every
    class it compared is plain data or allowed (no __eq__/__ne__ of its own: DCP's metadata dataclasses),
    the comparison is decided (unequal: torch stops with "Invalid magic number") and readers agree."""
    compared = inv.facts.extra.get("magic_compared_with")
    if _MAGIC_UNDECIDED not in anomaly or not compared:
        return False
    names = [compared] if isinstance(compared, str) else list(compared)
    return all(cats.get(n) in ("data", "allowed") for n in names)


def _hidden_streams(inv: Inventory, cats: Mapping[str, str]) -> list[Finding]:
    """Pickles torch.load itself never reads, yet the file carries (polyglots, smuggled members)."""
    loaded = set(inv.facts.loaded_streams)
    file_object = set((inv.facts.extra or {}).get("file_object_streams") or ())
    out = []
    for stream in inv.facts.streams:
        if stream in loaded:
            continue
        if inv.format == "torchscript" and stream.endswith(_TORCHSCRIPT_STREAMS):
            continue
        refs = [g for g in inv.globals if g.stream == stream and cats.get(g.qualname) != "allowed"]
        if stream in file_object and not refs:
            continue  # the legacy file a file-object load reads: CK107 names the two readings
        reader = ("is not read by torch.load(path), but torch.load of a file object (io.BytesIO) reads it"
                  if stream in file_object else "is not read by torch.load")
        out.append(HIDDEN_PICKLE.finding(
            f"pickle stream {stream} {reader}"
            + (f"{' and' if stream in file_object else ' but'} references "
               f"{', '.join(dict.fromkeys(g.qualname for g in refs[:4]))}" if refs else ""),
            location=stream, fix="remove it: a checkpoint has no reason to carry another pickle",
            severity="error" if refs else "warning"))
    return out
