"""Compatibility of one inventory with one target: torch's verdict, reasons, and the fix."""

from __future__ import annotations

from typing import Any

from ..inventory import Inventory
from ..record import record
from ..results import CompatFix, CompatReport
from ..targets.signature import Signature
from .compare import CompatResult, compare
from .fixes import Fix, apply_fix, infer_fix
from .libraries import LibraryView, library_notes, library_view
from .snippet import make_snippet, predicted_verdict, whole_module
from .training import adjusted, explain
from .unwrap import StateDict, find_state_dict


@record(frozen=False)
class CompatAnalysis:
    """What the compat rules see: the state_dict found and the comparison; :meth:`report` is the result."""

    target: str
    state_dict: StateDict
    result: CompatResult
    fix: Fix | None
    exact: bool
    """False when a snapshot had to replay default rules for modules with custom load logic."""
    target_notes: tuple[str, ...] = ()
    """How the target was built (e.g. on CPU because it refused the meta device)."""
    ties: tuple[tuple[str, str], ...] = ()
    """(key, tied-to key) pairs of the model's tied weights."""
    library: LibraryView | None = None
    """What transformers / peft / timm's own loader does with it (compat.libraries)."""

    def report(self) -> CompatReport:
        """The typed result the reports carry (JSON ``files[].compat``)."""
        r, f = self.result, self.fix
        fix = None if f is None else CompatFix(
            tuple((a, b) for a, b in f.renames), tuple(f.drop), tuple(f.random_init), f.strict,
            tuple(f.diagnosis), f.snippet, tuple(f.transpose))
        return CompatReport(
            target=self.target, state_dict_path=tuple(self.state_dict.path),
            state_dict_found_by=self.state_dict.how, strict_ok=r.strict_ok, nonstrict_ok=r.nonstrict_ok,
            missing=tuple(r.missing), unexpected=tuple(r.unexpected), shape_mismatch=dict(r.shape_mismatch),
            dtype_mismatch=dict(r.dtype_mismatch), non_tensor=dict(r.non_tensor), load_error=r.load_error,
            exact=self.exact, notes=(*r.notes, *self.target_notes, *library_notes(self.library)), fix=fix)


def analyze(inv: Inventory, sig: Signature, *, model: Any = None,
            key: tuple[Any, ...] | None = None) -> CompatAnalysis:
    sd = find_state_dict(inv, key)
    custom = any(m.load_rule == "custom" for m in sig.modules)
    if custom and model is not None:
        from .live import compare_live

        def run(s: StateDict) -> CompatResult:
            return compare_live(model, s)
        exact = True
    else:
        def run(s: StateDict) -> CompatResult:
            return compare(sig, s)
        exact = not custom
    checked = adjusted(inv, run)  # DTensor copy errors, torch.ao packed tuples (compat.training)
    result = checked(sd)
    library = library_view(inv, sig, sd, result, model, checked)
    generic = library is None or not library.no_generic_fix
    fix = infer_fix(sig, sd, result, checked) if generic else None if library is None else library.fix
    if fix is not None and generic:
        held = None
        if sd.how == "module object":  # weights_only needs its model classes allowlisted
            held = whole_module(inv, predicted_verdict(inv))
        fix.snippet = make_snippet(inv.path, sig.target, sig.kwargs, sd.path, fix, module_object=held)
    explain(inv, sd, fix, checked, sig)  # what dropped keys lose; fp8/int8/flat params loaded; the loader
    return CompatAnalysis(sig.target, sd, result, fix, exact, sig.notes, tuple(sig.shared.items()), library)


__all__ = ["CompatAnalysis", "analyze", "apply_fix"]
