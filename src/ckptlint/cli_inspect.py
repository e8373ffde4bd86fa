"""``ckptlint inspect``: each input's inventory, as text or JSON (the parser lives in cli.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .cli_support import EXIT_ERROR, EXIT_OK
from .cli_support import one_line as _one_line
from .cli_support import report_error as _report_error
from .errors import CkptlintError


def run_inspect(files: Sequence[str], exclude: Sequence[str], *, json: bool) -> int:
    return _inspect_json(files, exclude) if json else _inspect_text(files, exclude)


def read_one(path: str) -> tuple[Any, str | None, str | None]:
    """``(inventory, None, None)`` or ``(None, reason, format)``; never raises an Exception."""
    from . import inspect
    from .errors import CheckpointError

    try:
        return inspect(path), None, None
    except CheckpointError as e:
        return None, e.reason, e.format
    except CkptlintError as e:
        return None, str(e), None
    except Exception as e:  # noqa: BLE001 - a bug must still be one line, not a traceback
        return None, f"internal error: {type(e).__name__}: {e}", None


def _inputs(files: Sequence[str], exclude: Sequence[str]) -> Iterator[tuple[str, Any, str | None, str | None]]:
    """``(name, inventory, reason, format)`` per input: folders walked, ``-`` read, each file once."""
    from .record import replace
    from .rules.input import NOTE_KINDS
    from .sources import resolve

    with resolve(files, exclude=exclude, stdin=True) as sources:
        for src in sources:
            if src.path is None:
                yield src.name, None, src.error, src.kind
                continue
            inv, reason, fmt = read_one(src.path)
            if inv is None and src.walked and fmt in NOTE_KINDS:  # a walk's tokenizer .bin: a note, not a failure
                _report_error(src.name, f"skipped: {reason}")
                continue
            yield src.name, replace(inv, path=src.name) if inv is not None and src.spooled else inv, reason, fmt


def _inspect_text(files: Sequence[str], exclude: Sequence[str]) -> int:
    from .report.inventory_text import render_inventory

    status = EXIT_OK
    first = True
    for path, inv, reason, _ in _inputs(files, exclude):
        if inv is not None:
            try:
                text = render_inventory(inv)
            except Exception as e:  # noqa: BLE001
                inv, reason = None, f"internal error: {type(e).__name__}: {e}"
            else:
                if not first:
                    sys.stdout.write("\n")
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
                first = False
        if inv is None:
            status = EXIT_ERROR
            _report_error(path, reason or "unknown error")
    return status


def _inspect_json(files: Sequence[str], exclude: Sequence[str]) -> int:
    from .report.inventory_json import dumps, error_entry, file_entry, join_document

    status = EXIT_OK
    encoded: list[str] = []
    for path, inv, reason, fmt in _inputs(files, exclude):
        if inv is not None:
            try:
                encoded.append(dumps(file_entry(inv)))
                continue
            except Exception as e:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
                reason, fmt = f"internal error: cannot encode as JSON: {type(e).__name__}", inv.format
        status = EXIT_ERROR
        _report_error(path, reason or "unknown error")
        encoded.append(dumps(error_entry(path, _one_line(reason or "unknown error"), fmt)))
    sys.stdout.write(join_document(encoded) + "\n")
    return status
