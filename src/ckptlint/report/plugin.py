"""The built-in output formats, registered like any reporter plugin."""

from __future__ import annotations

from typing import Any

from ..plugin import Reporter, hookimpl
from ..results import Report


def _text(report: Report, options: dict[str, Any]) -> str:
    from .check_text import render

    return render(report, options)


def _concise(report: Report, options: dict[str, Any]) -> str:
    from .check_text import render_concise_format

    return render_concise_format(report, options)


def _json(report: Report, options: dict[str, Any]) -> str:
    from .check_json import render_json

    return render_json(report, options)


def _sarif(report: Report, options: dict[str, Any]) -> str:
    from .sarif import render_sarif

    return render_sarif(report, options)


def _github(report: Report, options: dict[str, Any]) -> str:
    from .github import render_github

    return render_github(report, options)


def _markdown(report: Report, options: dict[str, Any]) -> str:
    from .markdown import render_markdown

    return render_markdown(report, options)


@hookimpl
def ckptlint_reporters() -> dict[str, Reporter]:
    return {"text": _text, "concise": _concise, "json": _json, "sarif": _sarif, "github": _github,
            "markdown": _markdown}
