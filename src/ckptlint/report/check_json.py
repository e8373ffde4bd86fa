"""The JSON document of ``ckptlint check --format json`` (contract version 1, docs/report-json.md).

The one place the result model becomes dicts: every field of the contract is
spelled here, and schemas/report.schema.json checks the output in the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..findings import Finding
from ..results import Blocker, FileReport, Report, Verdict

if TYPE_CHECKING:
    from ..compat_report import CompatFix, CompatReport

VERSION = 1


def finding_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity, "message": f.message,
            "key": f.key, "location": f.location, "fix": f.fix}


def blocker_dict(b: Blocker) -> dict[str, Any]:
    return {"kind": b.kind, "detail": b.detail, "stream": b.stream, "offset": b.offset, "category": b.category}


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"loads": v.loads, "blocking": [blocker_dict(b) for b in v.blocking],
            "torch_version": v.torch_version, "advice": v.advice}


def fix_dict(f: CompatFix) -> dict[str, Any]:
    return {"renames": [list(r) for r in f.renames], "drop": list(f.drop), "random_init": list(f.random_init),
            "strict": f.strict, "diagnosis": list(f.diagnosis), "snippet": f.snippet,
            "transpose": list(f.transpose)}


def compat_dict(c: CompatReport) -> dict[str, Any]:
    return {
        "target": c.target,
        "state_dict_path": list(c.state_dict_path),
        "state_dict_found_by": c.state_dict_found_by,
        "strict_ok": c.strict_ok,
        "nonstrict_ok": c.nonstrict_ok,
        "missing": list(c.missing),
        "unexpected": list(c.unexpected),
        "shape_mismatch": {k: [list(a), list(b)] for k, (a, b) in c.shape_mismatch.items()},
        "dtype_mismatch": {k: [a, b] for k, (a, b) in c.dtype_mismatch.items()},
        "non_tensor": dict(c.non_tensor),
        "load_error": c.load_error,
        "exact": c.exact,
        "notes": list(c.notes),
        "fix": None if c.fix is None else fix_dict(c.fix),
    }


def file_dict(fr: FileReport) -> dict[str, Any]:
    """One entry of ``files``: each global once (first reference), with its category."""
    cats = fr.verdict.categories if fr.verdict else {}
    globals_ = []
    if fr.inventory is not None:
        seen = set()
        for g in fr.inventory.globals:
            if g.qualname not in seen:
                seen.add(g.qualname)
                globals_.append({"module": g.module, "name": g.name, "category": cats.get(g.qualname),
                                 "stream": g.stream, "offset": g.offset})
    return {
        "path": fr.path,
        "format": fr.format,
        "error": fr.error,
        "findings": [finding_dict(f) for f in fr.findings],
        "globals": globals_,
        "weights_only": None if fr.verdict is None else verdict_dict(fr.verdict),
        "compat": None if fr.compat is None else compat_dict(fr.compat),
    }


def skipped_dict(fr: FileReport) -> dict[str, Any]:
    """One entry of ``skipped``: a file a folder walk found that is plainly not a checkpoint."""
    return {"path": fr.path, "format": fr.format, "reason": fr.error}


def report_dict(report: Report) -> dict[str, Any]:
    """The whole document: ``{"version": 1, "files": [...]}``, plus ``skipped`` (optional, added in
    version 1) when a folder walk passed over files that are not checkpoints: a consumer that counts
    the files it expected sees where the others went, and a document without skips is unchanged."""
    doc: dict[str, Any] = {"version": VERSION, "files": [file_dict(fr) for fr in report.files]}
    if report.skipped:
        doc["skipped"] = [skipped_dict(fr) for fr in report.skipped]
    return doc


def render_json(report: Report, options: dict[str, Any]) -> str:
    """Strict JSON (non-finite floats and odd objects summarised, as ``inspect --format json`` does)."""
    from .inventory_json import dumps

    return dumps(report_dict(report))
