"""``ckptlint.check()``: run the analyses on files and collect findings into a report."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import closing
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import CheckpointError, CkptlintError
from .inventory import StorageRecord, TensorRecord
from .limits import DEFAULT_LIMITS, Limits
from .parallel import Done, Raise, default_jobs, run_in_order
from .record import replace
from .results import FileReport, Report
from .selection import NO_OVERRIDES, Overrides
from .sources import CheckInput, Source, resolve
from .vocab import TARGETS_MODES, TargetsMode, format_kind

if TYPE_CHECKING:  # targets and compat load only for a check that has one (startup: docs/development.md)
    from .targets.resolve import Target
    from .targets.signature import Signature

__all__ = ["CheckInput", "FileReport", "Report", "check", "check_file", "unreadable_report"]


def check_file(path: str | os.PathLike[str], *, trusted: Iterable[str] = (),
               limits: Limits = DEFAULT_LIMITS, target: Target | None = None,
               config: Config | None = None) -> FileReport:
    """All rules (built-in and plugins) on one file, before selection and severity policy.

    Unreadable input becomes ``error`` plus a CK901/CK902 finding, never an exception."""
    from .context import FileContext
    from .formats import read_inventory
    from .plugin.manager import run_check_file_hooks
    from .safety.allowlist import allowed_globals, installed_torch_version
    from .safety.weights_only import predict
    from .sources import special_file

    path = os.fspath(path)
    trusted_set = frozenset(trusted)
    special = special_file(path)
    if special is not None:
        return unreadable_report(path, special, "unreadable")
    try:
        inv = read_inventory(path, limits)
    except CkptlintError as e:
        if isinstance(e, CheckpointError):
            return unreadable_report(path, e.reason, e.format, e.limit)
        return unreadable_report(path, str(e), None)
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


def unreadable_report(path: str, reason: str, kind: str | None, limit: str | None = None) -> FileReport:
    """The report of an input that cannot be read: its one-line reason, one CK901/902/903 finding."""
    from .rules.input import input_finding
    from .safety.allowlist import installed_torch_version
    from .safety.weights_only import unreadable_verdict

    return FileReport(path, None if kind is None else format_kind(kind), reason, [input_finding(reason, kind, limit)],
                      unreadable_verdict(reason, installed_torch_version()))


def check(paths: CheckInput | Iterable[CheckInput], *,
          trusted: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS,
          config: str | None = None, use_config: bool = True, target: Target | None = None,
          model: Any = None, model_kwargs: Any = None, snapshot: str | None = None,
          key: str | None = None, overrides: Overrides | None = None,
          apply_baseline: bool = True, targets: TargetsMode = "all", exclude: Iterable[str] = (),
          stdin: bool = False, jobs: int | None = 1, records: bool = True) -> Report:
    """Check checkpoints: files, folders (walked), bytes or binary file objects; see :class:`Report`.

    Inputs become files to check in :mod:`ckptlint.sources` (each once; ``exclude`` globs and the
    configured ``exclude`` leave out what a folder walk finds; with ``stdin`` the path ``-`` is
    standard input). Bytes and file objects are reported as ``<bytes>`` / ``<stream>`` (or their ``name``).

    Each file's configuration is the nearest ``[tool.ckptlint]`` above it (or ``config``):
    its trusted globals, targets, selection, severities, per-file ignores and baseline
    apply; ``overrides`` (the command line) win. ``targets`` says which configured
    targets apply: ``all``, ``snapshots`` (only those with a snapshot, used without the
    live class: never imports torch) or ``none``. Raises ConfigError / TargetError for
    unusable settings — never for unreadable checkpoints, which become file errors.
    ``jobs``: files checked at a time (:mod:`ckptlint.parallel`; None or 0: one per core, at most 8); the
    report is the same as a serial run's, in the same order. ``records=False``: each inventory keeps its
    globals, facts, notes and anomalies but not its tensors, storages, structure, metadata and pickle-level
    records (what the built-in formats render; a worker's result then costs both processes far less to move).
    """
    if targets not in TARGETS_MODES:
        raise ValueError(f"targets must be all, snapshots or none, not {targets!r}")
    from .plugin.manager import all_rules
    from .rules.input import NOTE_KINDS
    from .selection import apply_policy, read_baseline

    overrides = overrides or NO_OVERRIDES
    rules = all_rules()
    files = []
    skipped = []
    baselines: dict[str, frozenset[tuple[str, str, str]]] = {}
    with resolve(paths, exclude=tuple(exclude), config=config, use_config=use_config, stdin=stdin,
                 limits=limits) as sources:
        entries, items = _jobs(sources, trusted, limits, config, use_config, target, model, model_kwargs,
                               snapshot, key, targets)
        live = any(isinstance(i, _Job) and i.target is not None and i.target.model is not None for i in items)
        n = 1 if live else default_jobs(len(items)) if jobs is None or jobs <= 0 else jobs
        with closing(run_in_order(_check_job, items, n, _crashed, _COMPACT,
                                         None if records else _without_records)) as reports:
            for fr, (src, cfg) in zip(reports, entries, strict=True):  # a Raise ends both
                p = src.name
                if src.path is not None:
                    if src.spooled:
                        fr = _named(fr, p)
                    if src.walked and fr.error is not None and fr.format in NOTE_KINDS:
                        skipped.append(fr)  # a tokenizer .bin a walk found is a note, not a failure
                        continue
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
    return Report(tuple(files), tuple(skipped))


class _Job:
    """One file to check: what :func:`check_file` needs, sent to a worker under ``--jobs``
    (a plain class: no dataclass to build when the module is imported)."""

    __slots__ = ("config", "limits", "path", "target", "trusted")

    def __init__(self, path: str, trusted: tuple[str, ...], limits: Limits, target: Target | None,
                 config: Config) -> None:
        self.path, self.trusted, self.limits, self.target, self.config = path, trusted, limits, target, config


_COMPACT = (TensorRecord, StorageRecord)
"""Many per report: sent back from workers by their field values (ckptlint.parallel)."""


def _without_records(fr: FileReport) -> FileReport:
    """What the built-in formats render of an inventory: its globals, facts and notes; not its tensors,
    nor the pickle-level records (metadata, streams, operations, events, stops): a small file's report then
    pickles to a third of its size, a third of what a ``-j`` worker's result costs both processes."""
    inv = fr.inventory
    return fr if inv is None else replace(fr, inventory=replace(
        inv, tensors=(), storages=(), structure={}, metadata={}, pickles=(), operations=(), events=(), stops=()))


def _check_job(job: _Job) -> FileReport:
    return check_file(job.path, trusted=job.trusted, limits=job.limits, target=job.target, config=job.config)


def _crashed(job: _Job, reason: str) -> FileReport:
    return unreadable_report(job.path, reason, None)


def _jobs(sources: list[Source], trusted: Iterable[str], limits: Limits, config: str | None, use_config: bool,
          target: Target | None, model: Any, model_kwargs: Any, snapshot: str | None, key: str | None,
          which: TargetsMode) -> tuple[list[tuple[Source, Config]], list[_Job | Done[FileReport] | Raise]]:
    """Each source's configuration and job, in order; what fails first (a target that cannot be
    built) ends the list as a :class:`Raise`, raised where a serial run would raise it."""
    from .config import config_for

    trusted = tuple(trusted)
    seen: dict[str, str | None] = {}  # folder -> its configuration file: one walk up per folder, not per file
    entries: list[tuple[Source, Config]] = []
    items: list[_Job | Done[FileReport] | Raise] = []
    for src in sources:
        p = src.name
        try:
            cfg = config_for(p if src.spooled else src.path or p, config, seen) if use_config else Config()
            if src.path is None:
                items.append(Done(unreadable_report(p, src.error or "cannot be read", src.kind)))
            else:
                t = target if target is not None else _target_for(p, cfg, model, model_kwargs, snapshot, key, which)
                items.append(_Job(src.path, (*trusted, *cfg.trusted_globals), limits, t, cfg))
        except Exception as e:  # noqa: BLE001 - raised in order, after the files before it are checked
            items.append(Raise(e))
            break
        entries.append((src, cfg))
    return entries, items


def _named(fr: FileReport, name: str) -> FileReport:
    """A temporary copy's report under the input's name (``-``, ``<bytes>``)."""
    inv = None if fr.inventory is None else replace(fr.inventory, path=name)
    return replace(fr, path=name, inventory=inv)


def _target_for(path: str, cfg: Config | None, model: Any, model_kwargs: Any, snapshot: str | None,
                key: str | None, which: TargetsMode = "all") -> Target | None:
    """Explicit options win; otherwise the first configured target whose glob matches the file."""
    if model is not None or snapshot is not None:
        from .compat.unwrap import parse_key
        from .targets.resolve import resolve_target

        spec = _resolve_spec(model, model_kwargs) if isinstance(model, str) else None
        return resolve_target(resolved=spec, model=None if isinstance(model, str) else model, snapshot=snapshot,
                              key=parse_key(key) if key else None)
    entry = cfg.target_for(path) if cfg is not None and which != "none" else None
    if entry is None or (which == "snapshots" and not entry.snapshot):
        return None
    from .compat.unwrap import parse_key
    from .targets.resolve import resolve_target

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
