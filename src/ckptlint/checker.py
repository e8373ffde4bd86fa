"""``ckptlint.check()``: run the analyses on files and collect findings into a report."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from .config import Config
from .errors import CheckpointError, CkptlintError
from .limits import DEFAULT_LIMITS, Limits
from .results import FileReport, Report
from .selection import Overrides
from .targets.resolve import Target
from .targets.signature import Signature
from .vocab import TARGETS_MODES, TargetsMode, format_kind

__all__ = ["FileReport", "Report", "check", "check_file"]


def check_file(path: str | os.PathLike[str], *, trusted: Iterable[str] = (),
               limits: Limits = DEFAULT_LIMITS, target: Target | None = None,
               config: Config | None = None) -> FileReport:
    """All rules (built-in and plugins) on one file, before selection and severity policy.

    Unreadable input becomes ``error`` plus a CK901/CK902 finding, never an exception."""
    from .context import FileContext
    from .formats import read_inventory
    from .plugin.manager import run_check_file_hooks
    from .rules.input import input_finding
    from .safety.allowlist import allowed_globals, installed_torch_version
    from .safety.weights_only import predict, unreadable_verdict

    path = os.fspath(path)
    trusted_set = frozenset(trusted)
    try:
        inv = read_inventory(path, limits)
    except CkptlintError as e:
        reason = e.reason if isinstance(e, CheckpointError) else str(e)
        kind = e.format if isinstance(e, CheckpointError) else None
        limit = e.limit if isinstance(e, CheckpointError) else None
        return FileReport(path, None if kind is None else format_kind(kind), reason,
                          [input_finding(reason, kind, limit)],
                          unreadable_verdict(reason, installed_torch_version()))
    verdict = predict(inv, allowed_globals() | trusted_set, installed_torch_version())
    compat = compat_error = None
    if target is not None:
        from .compat.analyze import analyze
        from .errors import UnwrapError

        try:
            compat = analyze(inv, target.signature, model=target.model, key=target.key)
        except UnwrapError as e:
            compat_error = str(e)
    ctx = FileContext(path, inv, verdict, trusted_set, target, compat, compat_error, config)
    findings = run_check_file_hooks(ctx)
    return FileReport(path, format_kind(inv.format), None, findings, verdict, inv,
                      None if compat is None else compat.report())


def check(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
          trusted: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS,
          config: str | None = None, use_config: bool = True, target: Target | None = None,
          model: Any = None, model_kwargs: Any = None, snapshot: str | None = None,
          key: str | None = None, overrides: Overrides | None = None,
          apply_baseline: bool = True, targets: TargetsMode = "all") -> Report:
    """Check one or more checkpoint files; see :class:`Report`.

    Each file's configuration is the nearest ``[tool.ckptlint]`` above it (or ``config``):
    its trusted globals, targets, selection, severities, per-file ignores and baseline
    apply; ``overrides`` (the command line) win. ``targets`` says which configured
    targets apply: ``all``, ``snapshots`` (only those with a snapshot, used without the
    live class: never imports torch) or ``none``. Raises ConfigError / TargetError for
    unusable settings — never for unreadable checkpoints, which become file errors.
    """
    if targets not in TARGETS_MODES:
        raise ValueError(f"targets must be all, snapshots or none, not {targets!r}")
    from .config import config_for
    from .plugin.manager import all_rules
    from .selection import apply_policy, read_baseline

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    overrides = overrides or Overrides()
    rules = all_rules()
    files = []
    baselines: dict[str, frozenset[tuple[str, str, str]]] = {}
    for p in paths:
        p = os.fspath(p)
        cfg = config_for(p, config) if use_config else Config()
        t = target if target is not None else _target_for(p, cfg, model, model_kwargs, snapshot, key, targets)
        fr = check_file(p, trusted=(*trusted, *cfg.trusted_globals), limits=limits, target=t, config=cfg)
        baseline_path = overrides.baseline or cfg.baseline
        accepted: frozenset[tuple[str, str, str]] = frozenset()
        if baseline_path and apply_baseline:
            if baseline_path not in baselines:
                baselines[baseline_path] = read_baseline(baseline_path)
            accepted = baselines[baseline_path]
        fr = replace(fr, findings=apply_policy(list(fr.findings), p, cfg, rules, overrides, accepted,
                                               os.path.dirname(os.path.abspath(baseline_path))
                                               if baseline_path else None))
        files.append(fr)
    return Report(tuple(files))


def _target_for(path: str, cfg: Config | None, model: Any, model_kwargs: Any, snapshot: str | None,
                key: str | None, which: TargetsMode = "all") -> Target | None:
    """Explicit options win; otherwise the first configured target whose glob matches the file."""
    from .compat.unwrap import parse_key
    from .targets.resolve import resolve_target

    if model is not None or snapshot is not None:
        spec = _resolve_spec(model, model_kwargs) if isinstance(model, str) else None
        return resolve_target(resolved=spec, model=None if isinstance(model, str) else model, snapshot=snapshot,
                              key=parse_key(key) if key else None)
    entry = cfg.target_for(path) if cfg is not None and which != "none" else None
    if entry is None or (which == "snapshots" and not entry.snapshot):
        return None
    live = entry.model if which == "all" else None
    return resolve_target(resolved=_resolve_spec(live, entry.model_kwargs) if live else None,
                          snapshot=entry.snapshot, key=parse_key(entry.key) if entry.key else None,
                          allow_missing=entry.allow_missing, allow_unexpected=entry.allow_unexpected,
                          allow_mismatch=entry.allow_mismatch)


def _resolve_spec(spec: str, kwargs: Any) -> tuple[Signature, Any]:
    """The engine asks the resolver hook (plugins first, ``package.module:callable`` last)."""
    from .plugin.manager import resolve_spec
    from .targets.spec import parse_kwargs

    return resolve_spec(spec, parse_kwargs(kwargs))
