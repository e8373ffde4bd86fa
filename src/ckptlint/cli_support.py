"""Small pieces of the command line shared by its subcommands: exit codes, the one-line error format,
output files (cli.py stays small); the argument parser is in cli_parser."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from .errors import OutputError, UsageError
from .filenames import special_kind

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def jobs_count(text: str) -> int:
    """``--jobs``: a whole number, 0 for one per core (ckptlint.parallel.default_jobs)."""
    if not text.strip().isdigit():
        import argparse  # only for the error: a check's line is read without argparse (cli_args)

        raise argparse.ArgumentTypeError(f"expected a whole number of processes (0: one per core), not {text!r}")
    return int(text)


def one_line(text: str) -> str:
    """Whitespace folded to single spaces, and control characters (an escape sequence from a file name,
    a key or a flag value) shown escaped, so an error line cannot colour the terminal or forge lines."""
    return printable(" ".join(str(text).split()) or "unknown error")


def printable(text: str) -> str:
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def report_error(path: str, reason: str, stream: TextIO | None = None) -> None:
    print(f"ckptlint: {printable(path)}: {one_line(reason)}", file=stream or sys.stderr, flush=True)


def write_output(path: str, text: str, mode: str = "w") -> None:
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise OutputError(path, e.strerror or str(e)) from None


def output_dir_exists(path: str | None) -> None:
    """Fail before the work, not after it: an output file whose folder does not exist."""
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise OutputError(path, f"no such directory: {os.path.dirname(path) or folder}")


def input_files(*flags: tuple[str, str | None]) -> None:
    """Refuse a FIFO or a device given to a flag that names a file to read (``--config``, ``--baseline``,
    ``--snapshot``, ``--model-config``, ``--verify``) before any work: opening a FIFO blocks until a writer
    comes and ``/dev/zero`` never ends, so either would hang the command instead of failing it."""
    for flag, path in flags:
        what = special_kind(path) if path else None
        if what is not None:
            raise UsageError(f"{flag} {path}: not a regular file ({what}): nothing was read")


def target_kwargs(model: str | None, model_kwargs: str | None, model_config: str | None) -> Any:
    """The target's keyword arguments from ``--model-kwargs`` and ``--model-config`` (check and convert
    share these flags): ``--model-config PATH`` is ``{"config": PATH}`` added to the kwargs."""
    if (model_kwargs or model_config) and not model:
        raise UsageError("--model-kwargs and --model-config need --model")
    if not model_config:
        return model_kwargs
    from .targets.spec import parse_kwargs

    return {**parse_kwargs(model_kwargs), "config": model_config}

