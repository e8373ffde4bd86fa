"""The ``ckptlint`` command line. Thin: parse arguments, call the library, render.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its
arguments and sets ``func`` to a ``cmd_<name>(args) -> int`` handler; add new
subcommands to :data:`SUBCOMMANDS`.

Exit codes: 0 success, 1 findings at or above the fail level (``check``, ``diff``,
``snapshot --verify``), 2 usage error or unreadable input. No input ever produces a
traceback: handlers raise :class:`~ckptlint.errors.CkptlintError` and :func:`main`
prints it, once, as one line. Rendering lives in ``report/``. torch is never imported here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .cli_args import parse_check
from .cli_support import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, input_files, jobs_count, target_kwargs
from .cli_support import one_line as _one_line
from .cli_support import output_dir_exists as _output_dir_exists
from .cli_support import printable as _printable
from .cli_support import report_error as _report_error
from .cli_support import write_output as _write
from .errors import CkptlintError, PluginError, UsageError
from .version import __version__
from .vocab import SEVERITIES, TARGETS_MODES

if TYPE_CHECKING:
    import argparse

# -- inspect -----------------------------------------------------------------


def _add_inspect(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="show what checkpoint files hold, without loading them",
        description="List every tensor record (key path, dtype, shape, device, storage) and "
                    "summarise each file: format, sizes, pickle protocol, shared storages, "
                    "globals referenced, notes. Nothing in the files is executed; torch is not needed.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=_FILES_HELP)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help=_EXCLUDE_HELP)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default: text); json is described in docs/inventory-json.md")
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .cli_inspect import run_inspect

    return run_inspect(args.files, args.exclude, json=args.format == "json")


_FILES_HELP = ("checkpoint files (.pt/.pth/.bin/.ckpt/.safetensors/*.index.json …), folders (walked for "
               "checkpoint files, respecting .gitignore and exclude), or - for standard input")
_EXCLUDE_HELP = ("leave out what a folder walk finds matching GLOB (relative to the working directory; a "
                 "file named on the command line is always checked); repeatable, adds to the config's exclude")


# -- check -------------------------------------------------------------------


def _add_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check checkpoint files for safety, compatibility, device and hygiene problems",
        description="Report, before anything is loaded, what goes wrong when the files are loaded: "
                    "unsafe globals and an exact torch.load(weights_only=True) verdict (CK1xx), "
                    "compatibility with a target model (CK2xx, with --model/--snapshot or configured "
                    "targets), devices (CK3xx) and hygiene (CK4xx), each with a fix. Nothing in the "
                    "files is executed; torch is needed only to build a live --model target.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=_FILES_HELP)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help=_EXCLUDE_HELP)
    p.add_argument("--format", default="text", metavar="FORMAT",
                   help="text (default), concise (one line per finding), json, sarif, github, markdown, "
                        "or a plugin's format; see docs/output-formats.md")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("-q", "--quiet", action="count", default=0,
                   help="-q: leave out files without findings (the summary line stays); -qq: print no "
                        "report at all (the exit code says it; errors still go to stderr)")
    p.add_argument("--select", metavar="CODES",
                   help="comma-separated code prefixes to report (replaces the config's)")
    p.add_argument("--extend-select", metavar="CODES", help="code prefixes to report in addition")
    p.add_argument("--ignore", metavar="CODES",
                   help="comma-separated code prefixes to leave out (replaces the config's)")
    p.add_argument("--baseline", metavar="FILE", help="accepted findings: only new ones are reported")
    p.add_argument("--write-baseline", metavar="FILE",
                   help="write every current finding to FILE as the accepted baseline, and exit 0")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported")
    p.add_argument("--allow-global", action="append", default=[], metavar="MODULE.NAME",
                   help="trust this global (repeatable): no finding for it, and the weights_only "
                        "verdict assumes you allowlist it with torch.serialization.safe_globals")
    p.add_argument("--fail-on", choices=SEVERITIES, default="error",
                   help="lowest severity that makes the exit code 1 (default: error)")
    p.add_argument("--config", metavar="FILE",
                   help="use this pyproject.toml/ckptlint.toml instead of the nearest one above each file")
    p.add_argument("--isolated", action="store_true", help="ignore all configuration files")
    p.add_argument("-j", "--jobs", type=jobs_count, default=0, metavar="N",
                   help="check N files at a time: this process and N-1 workers (default 0: one per core, at "
                        "most 8); the output is the same as with -j 1, in the same order")
    p.add_argument("--skip-site-pth", action="store_true",
                   help="skip Python site-packages .pth path files with a note instead of failing "
                        "(they share the .pth extension; the pre-commit hooks use this)")
    p.add_argument("--skip-non-checkpoints", action="store_true",
                   help="skip files that are plainly not checkpoints (firmware or tokenizer blobs, text, site .pth "
                        "files, numpy arrays of plain values, archives holding no checkpoint) with a one-line note "
                        "instead of failing; broken checkpoints still fail (the pre-commit hooks use this)")
    p.add_argument("--model", metavar="SPEC",
                   help="target model: package.module:callable (class or factory), e.g. "
                        "torchvision.models:resnet18 or torchvision:resnet18; built on the meta device")
    p.add_argument("--model-kwargs", metavar="JSON",
                   help='keyword arguments for the target, e.g. \'{"num_classes": 10}\'')
    p.add_argument("--model-config", metavar="PATH",
                   help="a transformers config.json or save_pretrained folder for a transformers:CLASS "
                        "target (same as --model-kwargs '{\"config\": PATH}'); no weights are read")
    p.add_argument("--snapshot", metavar="FILE",
                   help="target snapshot from `ckptlint snapshot` (no torch needed); with --model, also "
                        "reports drift between the two")
    p.add_argument("--targets", choices=TARGETS_MODES, default="all",
                   help="which configured targets apply: all (default), snapshots (only targets with a "
                        "snapshot, never importing torch: the safety pre-commit hook uses this), or none")
    p.add_argument("--key", metavar="PATH",
                   help="where the state_dict sits in the checkpoint, e.g. state_dict or ema/model "
                        "(default: found automatically)")
    p.set_defaults(func=cmd_check)


def _codes(text: str | None, flag: str) -> tuple[str, ...] | None:
    """``"CK1, ck203,"`` -> ``("CK1", "CK203")``; a flag given without any code is a usage error
    (``--select ""`` would otherwise report nothing at all)."""
    if text is None:
        return None
    codes = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    if not codes:
        raise UsageError(f"{flag}: no codes given (ALL selects every rule)")
    return codes


def cmd_check(args: argparse.Namespace) -> int:
    from .checker import check
    from .plugin.manager import all_rules, reporters
    from .selection import Overrides, check_overrides, write_baseline

    formats = reporters()
    rules = all_rules()
    if args.format not in formats:
        raise UsageError(f"unknown format {args.format!r} (available: {', '.join(sorted(formats))})")
    overrides = Overrides(_codes(args.select, "--select"), _codes(args.extend_select, "--extend-select") or (),
                          _codes(args.ignore, "--ignore"), args.baseline)
    check_overrides(overrides, rules)
    input_files(("--config", args.config), ("--baseline", args.baseline), ("--snapshot", args.snapshot),
                ("--model-config", args.model_config))
    _output_dir_exists(args.output)
    _output_dir_exists(args.write_baseline)
    if args.skip_site_pth:
        args.files = _without_site_pth(args.files)
        if not args.files:
            return EXIT_OK
    args.model_kwargs = target_kwargs(args.model, args.model_kwargs, args.model_config)
    # the built-in formats render no tensor, storage or structure record (a plugin's format may): a file's
    # report then travels from a -j worker without them
    records = not formats[args.format].__module__.startswith("ckptlint.report.")
    report = check(args.files, trusted=args.allow_global, config=args.config,
                   use_config=not args.isolated, model=args.model, model_kwargs=args.model_kwargs,
                   snapshot=args.snapshot, key=args.key, overrides=overrides,
                   apply_baseline=not args.write_baseline, targets=args.targets, exclude=args.exclude,
                   stdin=True, jobs=args.jobs, records=records)
    for fr in report.skipped:  # found by a folder walk, plainly not a checkpoint (rules/input.NOTE_KINDS)
        _report_error(fr.path, f"skipped: {fr.error}")
    if args.skip_non_checkpoints:  # a note, not a failure (the pre-commit hooks): rules/input.NOTE_KINDS
        from .rules.input import skip_not_checkpoints

        report, skipped = skip_not_checkpoints(report)
        for fr in skipped:
            _report_error(fr.path, f"skipped: {fr.error}")
        if not report.files:
            return EXIT_OK
    for fr in report.unreadable:
        _report_error(fr.path, fr.error or "unknown error")
    if args.write_baseline:
        n = write_baseline(args.write_baseline, report.findings())
        print(f"{_printable(args.write_baseline)}: {n} finding{'' if n == 1 else 's'} accepted as the baseline")
        return EXIT_ERROR if report.unreadable else EXIT_OK
    out = sys.stdout if args.output is None else None
    color = out is not None and out.isatty() and not os.environ.get("NO_COLOR")
    if args.output or args.quiet < 2:
        options = {"rules": rules, "color": color, "quiet": args.quiet}
        try:
            text = formats[args.format](report, options)
        except Exception as e:  # noqa: BLE001 - a plugin's reporter failing is one line
            raise PluginError(f"format {args.format!r} failed: {type(e).__name__}: {e}") from None
        if args.output:
            _write(args.output, text.rstrip("\n") + "\n")
        elif text.strip():
            sys.stdout.write(text.rstrip("\n") + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if args.format == "github" else None
    if summary:
        _write(summary, formats["markdown"](report, {"rules": rules, "color": False}), mode="a")
    code = report.exit_code(args.fail_on)
    return EXIT_OK if args.exit_zero and code == EXIT_FINDINGS else code


def _without_site_pth(paths: Sequence[str]) -> list[str]:
    from .formats import sniff_kind

    kept = []
    for path in paths:
        if os.path.isfile(path) and sniff_kind(path) == "python-pth":  # never opens a FIFO, a device or -
            print(f"ckptlint: {path}: skipped: a Python site-packages .pth path file, not a checkpoint",
                  file=sys.stderr)
        else:
            kept.append(path)
    return kept


# -- snapshot ----------------------------------------------------------------


def _add_snapshot(sub: Any) -> None:
    p = sub.add_parser(
        "snapshot",
        help="write a target model's expected keys, shapes and dtypes to JSON (needs torch)",
        description="Build the target on the meta device and write its signature: later "
                    "`ckptlint check --snapshot FILE` needs no torch. With --verify, compare an "
                    "existing snapshot with the live class instead (exit 1 when it has drifted).",
    )
    p.add_argument("spec", metavar="SPEC", help="package.module:callable, e.g. torchvision.models:resnet18")
    p.add_argument("--model-kwargs", metavar="JSON", help="keyword arguments for the target")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-o", "--output", metavar="FILE", help="where to write the snapshot JSON")
    g.add_argument("--verify", metavar="FILE", help="compare this snapshot with the live class")
    p.set_defaults(func=cmd_snapshot)


def cmd_snapshot(args: argparse.Namespace) -> int:
    import json

    from .targets.libraries import ckptlint_resolve_target as library_target
    from .targets.resolve import live_signature, signature_drift
    from .targets.signature import load_snapshot
    from .targets.spec import parse_kwargs

    _output_dir_exists(args.output)
    input_files(("--verify", args.verify))
    library = library_target(spec=args.spec, kwargs=parse_kwargs(args.model_kwargs))  # transformers + config
    sig = library[0] if library is not None else live_signature(args.spec, args.model_kwargs, cached=False)[0]
    if args.verify:
        drift = signature_drift(load_snapshot(args.verify), sig)
        for d in drift:
            print(f"{_printable(args.verify)}: CK208 snapshot differs from the live class: {d}")
        if not drift:
            print(f"{_printable(args.verify)}: up to date with {sig.target}")
        return EXIT_FINDINGS if drift else EXIT_OK
    _write(args.output, json.dumps(sig.to_json(), indent=1) + "\n")
    n = len(sig.expected())
    print(f"{_printable(args.output)}: snapshot of {sig.target} ({n} keys, built on {sig.built_on})")
    return EXIT_OK


# -- diff --------------------------------------------------------------------


def _add_diff(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two checkpoints' state_dicts: keys added/removed, shape and dtype changes, renames",
        description="Exit 0 when the state_dicts match, 1 when they differ, 2 when a file is unreadable.",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--key-a", metavar="PATH", help="where A's state_dict sits (default: found automatically)")
    p.add_argument("--key-b", metavar="PATH", help="where B's state_dict sits")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    from .cli_inspect import read_one
    from .compat.diff import diff
    from .compat.unwrap import parse_key

    invs = []
    for path in (args.a, args.b):
        inv, reason, _ = read_one(path)
        if inv is None:
            _report_error(path, reason or "unknown error")
            return EXIT_ERROR
        invs.append(inv)
    d = diff(invs[0], invs[1], parse_key(args.key_a) if args.key_a else None,
             parse_key(args.key_b) if args.key_b else None)
    from .report.diff_text import render_diff, render_diff_json

    print(render_diff_json(d) if args.format == "json" else render_diff(d))
    return EXIT_OK if d.identical else EXIT_FINDINGS


# -- rules -------------------------------------------------------------------


def _add_rules(sub: Any) -> None:
    p = sub.add_parser("rules", help="list the rules (built-in and plugins), or show one",
                       description="Without CODE: every rule with its default severity. With CODE: its page.")
    p.add_argument("code", nargs="?", metavar="CODE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_rules)


def cmd_rules(args: argparse.Namespace) -> int:
    from .plugin.manager import all_rules, rule_doc
    from .report.rules import render_rule, render_rules

    rules = all_rules()
    if args.code:
        rule = rules.get(args.code.upper())
        if rule is None:
            raise UsageError(f"no rule {args.code!r} (see `ckptlint rules`)")
        print(render_rule(rule, rule_doc(rule), args.format))
    else:
        print(render_rules(list(rules.values()), args.format))
    return EXIT_OK


# -- convert -------------------------------------------------------------------


def _add_convert(sub: Any) -> None:
    from .conversion.command import add_convert  # argparse only; the conversion loads when it runs

    add_convert(sub)


# -- parser --------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [_add_inspect, _add_check, _add_snapshot, _add_diff, _add_rules,
                                             _add_convert]
"""Each adds one subcommand; ``_add_<name>`` declares the subcommand ``<name>`` (build_parser relies on it)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` (a subcommand's name), only that subcommand is declared:
    parsing its arguments goes the same, and the others' declarations (and what they import) are skipped."""
    from .cli_parser import Parser

    parser = Parser(
        prog="ckptlint",
        description="Static checks for PyTorch checkpoints: compatibility, safety and device "
                    "issues, found before anything is loaded.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        if command is None or add.__name__ == f"_add_{command}":
            add(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, when it is one (the top-level options take no value, so it is
    the first argument that is not an option); None otherwise (the full parser then reports it)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first is not None and any(add.__name__ == f"_add_{first}" for add in SUBCOMMANDS) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ckptlint`` console script and ``python -m ckptlint``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # detached or odd streams
                reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    args: Any = parse_check(argv, cmd_check)  # a plain check's line, without argparse (startup)
    if args is None:
        parser = build_parser(_command_of(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # usage errors (2), --help/--version (0)
            return e.code if isinstance(e.code, int) else EXIT_ERROR
    try:
        return int(args.func(args))
    except CkptlintError as e:  # the one place an error becomes its line and exit status 2
        print(f"ckptlint: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as e:  # torch (or a library) missing where only a live target needs it
        if (e.name or "").split(".")[0] != "torch":
            print(f"ckptlint: internal error: {type(e).__name__}: {_one_line(str(e))}", file=sys.stderr)
        else:
            print(f"ckptlint: {args.command} needs torch here (a live target model): pip install torch, "
                  "or use a snapshot (docs/cli.md)", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ckptlint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ckptlint inspect … | head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover
            pass
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - a bug: still one line and exit 2, never a traceback with exit 1
        print(f"ckptlint: internal error: {type(e).__name__}: {_one_line(str(e))} (please report it)",
              file=sys.stderr)
        return EXIT_ERROR


def console_main() -> None:
    """Run :func:`main` as a process and exit with its status.

    The interpreter's teardown (clearing every module, a garbage collection) is about a tenth of
    a small check's time, and with torch imported (``--model``) about 0.4 s and, with a CUDA
    build, ~130 MiB of peak memory: more than the check itself. So the process runs the
    ``atexit`` handlers (logging's flush and ``weakref.finalize`` clean-ups among them), flushes
    its streams and ends with ``os._exit``; every file ckptlint writes is closed before ``main``
    returns. When ``main`` is called in-process, nothing changes.
    """
    code = main()
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None:  # not CPython: its own exit
        sys.exit(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader left before the end
            code = EXIT_ERROR
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
