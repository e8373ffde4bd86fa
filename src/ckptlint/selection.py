"""Which findings are reported, and how severe: selection, overrides, per-file ignores, baseline.

Rules never decide policy; this module applies the configuration (and the
command line, which wins) to what the rules found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .config import Config
from .errors import ConfigError, OutputError, UsageError
from .filenames import special_kind
from .findings import Finding
from .record import record, replace
from .rule import Rule
from .vocab import SEVERITIES, Severity

ALL = "ALL"
"""The selector that matches every code (as in ruff); internally the empty prefix."""


@record
class Overrides:
    """Command-line options that replace (select, ignore) or extend (extend_select) the config."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] | None = None
    baseline: str | None = None


NO_OVERRIDES = Overrides()
"""The configuration as it is: no command-line option replaces or extends it."""


def selector_problem(selector: str, codes: Iterable[str]) -> str | None:
    """Why ``selector`` is not a usable code prefix, or None. A prefix that matches no registered
    code (``XYZ999``, ``CK2O3`` with a letter O) would silently report nothing, so it is an error;
    plugins register codes too, so ``codes`` is the plugin manager's registry."""
    if selector == ALL:
        return None
    if not selector:
        return "an empty code (use ALL for every rule)"
    if not any(c.startswith(selector) for c in codes):
        return f"{selector!r} matches no rule (see `ckptlint rules`; ALL selects every rule)"
    return None


def check_overrides(overrides: Overrides, codes: Iterable[str]) -> None:
    """Raise UsageError naming the first command-line selector that matches no rule."""
    known = tuple(codes)
    if overrides.select is not None and not overrides.select:
        raise UsageError("--select: no codes given: nothing would be reported (ALL selects every rule)")
    for flag, values in (("--select", overrides.select), ("--extend-select", overrides.extend_select),
                         ("--ignore", overrides.ignore)):
        for v in values or ():
            problem = selector_problem(v, known)
            if problem:
                raise UsageError(f"{flag}: {problem}")


def check_config(cfg: Config, codes: Iterable[str]) -> None:
    """Raise ConfigError naming the file, the setting and the first code that matches no rule."""
    if cfg.path is None:
        return
    known = tuple(codes)
    settings: list[tuple[str, Iterable[str]]] = [("select", cfg.select if cfg.select != ("",) else ()),
                                                 ("extend-select", cfg.extend_select), ("ignore", cfg.ignore),
                                                 ("severity", cfg.severity)]
    settings += [(f"per-file-ignores.{glob!r}", v) for glob, v in cfg.per_file_ignores.items()]
    for name, values in settings:
        for v in values:
            problem = selector_problem(v, known)
            if problem:
                raise ConfigError(f"{cfg.path}: {name}: {problem}", path=cfg.path)


def _prefixes(selectors: Iterable[str]) -> tuple[str, ...]:
    return tuple("" if s == ALL else s for s in selectors)


def _longest(code: str, prefixes: Iterable[str]) -> int:
    return max((len(p) for p in _prefixes(prefixes) if code.startswith(p)), default=-1)


def is_selected(code: str, select: Iterable[str], ignore: Iterable[str]) -> bool:
    """flake8/ruff style: the longest matching prefix decides; on a tie, ignore wins. ``ALL`` matches every
    code with length 0, so any named prefix is more specific."""
    s = _longest(code, select)
    return s >= 0 and s > _longest(code, ignore)


def apply_policy(findings: list[Finding], path: str, cfg: Config, rules: dict[str, Rule],
                 overrides: Overrides = NO_OVERRIDES, baseline: frozenset[tuple[str, str, str]] = frozenset(),
                 baseline_dir: str | None = None) -> list[Finding]:
    check_overrides(overrides, rules)
    check_config(cfg, rules)
    select = (overrides.select if overrides.select is not None else cfg.select) + cfg.extend_select \
        + overrides.extend_select
    ignore = (overrides.ignore if overrides.ignore is not None else cfg.ignore)
    per_file = [codes for glob, codes in cfg.per_file_ignores.items() if cfg.matches(path, (glob,))]
    ignore = tuple(ignore) + tuple(c for codes in per_file for c in codes)
    rel = _baseline_path(path, baseline_dir)
    out = []
    for f in findings:
        if not is_selected(f.code, select, ignore):
            continue
        if f.code == "CK102" and not cfg.forbid_full_model_pickles:
            continue
        default: Severity = rules[f.code].severity if f.code in rules else "error"
        # a third-party Finding may still carry severity "" (the rule's default), as documented before rule.finding
        sev = _severity(f.code, cfg.severity) or (f.severity if f.severity in SEVERITIES else default)
        if sev != f.severity:
            f = replace(f, severity=sev)
        if (rel, f.code, f.key or "") in baseline:
            continue
        out.append(f)
    return out


def _severity(code: str, overrides: dict[str, Severity]) -> Severity | None:
    best = max((p for p in overrides if code.startswith("" if p == ALL else p)),
               key=lambda p: 0 if p == ALL else len(p), default=None)
    return None if best is None else overrides[best]


def _baseline_path(path: str, baseline_dir: str | None) -> str:
    base = baseline_dir or os.getcwd()
    return os.path.relpath(os.path.abspath(path), base).replace(os.sep, "/")


def read_baseline(path: str) -> frozenset[tuple[str, str, str]]:
    """Accepted findings as (path relative to the baseline's folder, code, key)."""
    what = special_kind(path)
    if what is not None:  # a FIFO would block the open, /dev/zero never ends
        raise ConfigError(f"baseline {path}: not a regular file ({what}): give the file --write-baseline wrote")
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return frozenset((e["path"], e["code"], e.get("key") or "") for e in data["findings"])
    except FileNotFoundError:
        raise ConfigError(f"baseline {path}: no such file (write one with --write-baseline)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"baseline {path}: not a ckptlint baseline ({type(e).__name__}: {e})") from None


def write_baseline(path: str, entries: Iterable[tuple[str, Finding]]) -> int:
    import json

    base = os.path.dirname(os.path.abspath(path))
    rows = sorted({(_baseline_path(p, base), f.code, f.key or "", f.message) for p, f in entries})
    data = {"version": 1, "tool": "ckptlint",
            "findings": [{"path": p, "code": c, "key": k or None, "message": m} for p, c, k, m in rows]}
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
    except OSError as e:
        raise OutputError(path, e.strerror or str(e)) from None
    return len(rows)
